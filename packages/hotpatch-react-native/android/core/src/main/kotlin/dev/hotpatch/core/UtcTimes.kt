package dev.hotpatch.core

import java.time.DateTimeException
import java.time.Instant
import java.time.LocalDateTime
import java.time.ZoneOffset

/** The times of signed documents: `YYYY-MM-DDTHH:MM:SSZ`, UTC, whole seconds. */
object UtcTimes {
    private val TIME = Regex("([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z")

    /**
     * Parse [text] exactly as the reference (hotpatch_core.wire.parse_time), or return null:
     * years 0001 to 9999, real calendar days, hours 00-23, minutes and seconds 00-59. Java's
     * ISO_INSTANT would also take year 0000 and a leap second (23:59:60); the reference does not.
     */
    fun parse(text: String): Instant? {
        val match = TIME.matchEntire(text) ?: return null
        val (year, month, day, hour, minute, second) = match.destructured
        if (year.toInt() < 1) return null
        return try {
            LocalDateTime.of(year.toInt(), month.toInt(), day.toInt(), hour.toInt(), minute.toInt(), second.toInt())
                .toInstant(ZoneOffset.UTC)
        } catch (e: DateTimeException) {
            null // month 13, February 30, hour 24, second 60, ...
        }
    }
}
