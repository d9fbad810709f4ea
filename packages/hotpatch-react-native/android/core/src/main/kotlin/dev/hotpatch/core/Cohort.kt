package dev.hotpatch.core

import java.security.MessageDigest

/** Stable, monotone rollout cohorts (hotpatch_core.cohort, docs/spec/device-protocol.md). */
object Cohorts {
    const val BASIS_POINTS = 10_000
    private val DOMAIN = "hotpatch-cohort-v1".toByteArray(Charsets.UTF_8)

    /** The device's bucket (0..9999) for [salt]: SHA-256 of domain, salt and id, first 8 bytes mod 10000. */
    fun bucket(deviceId: String, salt: String): Int {
        val digest = MessageDigest.getInstance("SHA-256")
        digest.update(DOMAIN)
        digest.update(0)
        digest.update(salt.toByteArray(Charsets.UTF_8))
        digest.update(0)
        digest.update(deviceId.toByteArray(Charsets.UTF_8))
        val head = digest.digest().copyOf(8)
        // An unsigned 64-bit number: java.lang.Long's unsigned remainder.
        val value = head.fold(0L) { acc, byte -> (acc shl 8) or (byte.toLong() and 0xff) }
        return java.lang.Long.remainderUnsigned(value, BASIS_POINTS.toLong()).toInt()
    }
}
