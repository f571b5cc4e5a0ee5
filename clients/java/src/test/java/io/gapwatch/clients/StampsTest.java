package io.gapwatch.clients;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.nio.charset.StandardCharsets;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class StampsTest {
    private static byte[] reference(long value) {
        return Long.toUnsignedString(value).getBytes(StandardCharsets.US_ASCII);
    }

    @Test
    void decimalWritesEveryDigitCountAsTheUnsignedStringDoes() {
        long power = 1;
        for (int digits = 1; digits <= 19; digits++) {
            for (long value : new long[] {power - 1, power, power + 1, power * 9 - 1 + power / 10}) {
                assertArrayEquals(reference(value), Stamps.decimal(value), () -> "value " + value);
            }
            power *= 10;
        }
        for (long value : new long[] {0, Long.MAX_VALUE, Long.MIN_VALUE, -1}) {
            assertArrayEquals(reference(value), Stamps.decimal(value), () -> "value " + value);
        }
    }

    @Test
    void decimalMatchesTheUnsignedStringForRandomValues() {
        SplittableRandom random = new SplittableRandom(15);
        for (int i = 0; i < 100_000; i++) {
            long value = random.nextLong();
            long small = random.nextLong(1_000_000_000L);
            assertArrayEquals(reference(value), Stamps.decimal(value), () -> "value " + value);
            assertArrayEquals(reference(small), Stamps.decimal(small), () -> "value " + small);
        }
    }
}
