package dev.hotpatch.core

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test

class CohortTest {
    @Test
    fun `buckets match the golden vector`() {
        val cases = Vectors.json("cohort.json").arr()
        for (case in cases) {
            val bucket = Cohorts.bucket(case["deviceId"].str(), case["salt"].str())
            assertEquals((case["bucket"] as Json.Int).value.toInt(), bucket, case["deviceId"].str())
        }
    }
}
