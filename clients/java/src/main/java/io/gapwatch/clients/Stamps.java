package io.gapwatch.clients;

import java.nio.charset.StandardCharsets;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.Headers;
import org.apache.kafka.common.header.internals.RecordHeader;

/**
 * The three headers of gapwatch's wire format, version 1 ({@code docs/wire-format.md}):
 * their names, the rules for producer ids and epochs, and building one producer life's
 * stamp onto a record's headers.
 */
public final class Stamps {
    /** Header naming the producer instance. */
    public static final String HEADER_PRODUCER = "gapwatch-producer";
    /** Header naming the producer's incarnation (restart). */
    public static final String HEADER_EPOCH = "gapwatch-epoch";
    /** Header numbering the records of one (producer, epoch, topic, partition). */
    public static final String HEADER_SEQ = "gapwatch-seq";
    /** The longest producer id the wire format allows, in code points. */
    public static final int MAX_PRODUCER_ID_CHARS = 128;

    // Process-wide on purpose: epochs must grow across every producer this JVM creates.
    private static final AtomicLong LAST_EPOCH = new AtomicLong();

    private final Header producerHeader;
    private final Header epochHeader;
    private volatile boolean replacedStamp;

    Stamps(String producerId, long epoch) {
        this.producerHeader = new RecordHeader(HEADER_PRODUCER, producerId.getBytes(StandardCharsets.UTF_8));
        this.epochHeader = new RecordHeader(HEADER_EPOCH, Long.toUnsignedString(epoch).getBytes(StandardCharsets.US_ASCII));
    }

    /** Whether {@code name} is one of the three stamp headers. */
    public static boolean isStampHeader(String name) {
        return HEADER_PRODUCER.equals(name) || HEADER_EPOCH.equals(name) || HEADER_SEQ.equals(name);
    }

    /**
     * Why {@code producerId} cannot be written as a stamp, or {@code null} if it can:
     * 1..128 characters, all printable as Python's {@code str.isprintable} defines it
     * (the reference implementation's rule), so both sides accept the same ids.
     */
    public static String producerIdProblem(String producerId) {
        if (producerId == null) {
            return "is missing";
        }
        int length = producerId.codePointCount(0, producerId.length());
        if (length < 1 || length > MAX_PRODUCER_ID_CHARS) {
            return "must be 1.." + MAX_PRODUCER_ID_CHARS + " characters";
        }
        boolean printable = producerId.codePoints().allMatch(Stamps::isPrintable);
        return printable ? null : "has non-printable characters";
    }

    private static boolean isPrintable(int codePoint) {
        if (codePoint == ' ') {
            return true;
        }
        switch (Character.getType(codePoint)) {
            case Character.CONTROL:
            case Character.FORMAT:
            case Character.SURROGATE:
            case Character.PRIVATE_USE:
            case Character.UNASSIGNED:
            case Character.LINE_SEPARATOR:
            case Character.PARAGRAPH_SEPARATOR:
            case Character.SPACE_SEPARATOR:
                return false;
            default:
                return true;
        }
    }

    /** The current time in ms, strictly greater than any epoch this JVM handed out before. */
    public static long newEpoch() {
        long now = System.currentTimeMillis();
        return LAST_EPOCH.updateAndGet(last -> Math.max(now, last + 1));
    }

    /** Whether {@link #build} ever replaced an earlier stamp (for a one-time warning). */
    boolean hasReplacedStamp() {
        return replacedStamp;
    }

    /**
     * Add to {@code target} (the empty headers of the record about to be sent) the caller's
     * {@code headers} without any earlier stamp, in their order, then this producer's stamp
     * for {@code seq}. Written straight into the new record's headers: a {@code Headers}
     * handed to {@code ProducerRecord}'s constructor would be copied into another list.
     */
    void stamp(Headers headers, Headers target, long seq) {
        // toArray of no headers is a shared empty array: no iterator objects per record.
        for (Header header : headers.toArray()) {
            if (isStampHeader(header.key())) {
                // A record forwarded from a stamped topic (Kafka Streams copies input headers
                // to its outputs): two stamps would make it malformed.
                if (!replacedStamp) {
                    replacedStamp = true; // written once: a volatile write per record costs
                }
            } else {
                target.add(header);
            }
        }
        target.add(producerHeader);
        target.add(epochHeader);
        target.add(new RecordHeader(HEADER_SEQ, decimal(seq)));
    }

    /**
     * {@code value} as unsigned decimal ASCII digits, the wire format's number encoding:
     * {@code Long.toUnsignedString(value).getBytes(US_ASCII)} without the string in between,
     * since the sequence is encoded once per record.
     */
    static byte[] decimal(long value) {
        if (value < 0) {
            return Long.toUnsignedString(value).getBytes(StandardCharsets.US_ASCII); // >= 2^63: never a sequence
        }
        int digits = 1;
        for (long bound = 10; digits < 19 && value >= bound; bound *= 10) {
            digits++;
        }
        byte[] out = new byte[digits];
        int i = digits;
        long rest = value;
        while (rest > Integer.MAX_VALUE) { // only past 2^31 records: the int loop is the fast one
            out[--i] = (byte) ('0' + rest % 10);
            rest /= 10;
        }
        int small = (int) rest;
        while (i > 0) {
            out[--i] = (byte) ('0' + small % 10);
            small /= 10;
        }
        return out;
    }
}
