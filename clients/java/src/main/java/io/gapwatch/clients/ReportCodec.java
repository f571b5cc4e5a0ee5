package io.gapwatch.clients;

import java.nio.charset.StandardCharsets;

/**
 * The JSON of producer reports on the control topic, as {@code gapwatch.core.report_codec}
 * writes it: compact, UTF-8, keys in the same order, so Java and Python reports of the same
 * facts are the same bytes (apart from the clock in {@code sent_at_ms}).
 */
public final class ReportCodec {
    /** The report format version both sides write and read. */
    public static final int FORMAT_VERSION = 1;
    /** The first element of every report key. */
    public static final String KEY_TAG = "gapwatch-report";

    private ReportCodec() {}

    /** The record value of {@code report}; {@code acks} is "0", "1" or "all". */
    public static byte[] encodeValue(ProducerReport report, String acks, boolean idempotence, long sentAtMs) {
        StringBuilder out = new StringBuilder(192);
        out.append("{\"v\":").append(FORMAT_VERSION);
        out.append(",\"producer\":");
        appendString(out, report.producer());
        out.append(",\"epoch\":").append(Long.toUnsignedString(report.epoch()));
        out.append(",\"topic\":");
        appendString(out, report.topic());
        out.append(",\"partition\":").append(report.partition());
        out.append(",\"assigned\":");
        appendSeq(out, report.highestAssigned());
        out.append(",\"acked\":");
        appendSeq(out, report.highestAcked());
        out.append(",\"failed\":[");
        boolean first = true;
        for (long[] range : report.failed()) {
            if (!first) {
                out.append(',');
            }
            first = false;
            out.append('[').append(Long.toUnsignedString(range[0])).append(',')
                    .append(Long.toUnsignedString(range[1])).append(']');
        }
        out.append("],\"final\":").append(report.isFinal());
        out.append(",\"acks\":");
        appendString(out, acks);
        out.append(",\"idempotence\":").append(idempotence);
        out.append(",\"sent_at_ms\":").append(sentAtMs);
        out.append('}');
        return out.toString().getBytes(StandardCharsets.UTF_8);
    }

    /** The record key of {@code report}: one key per stream, so compaction keeps the latest. */
    public static byte[] encodeKey(ProducerReport report) {
        StringBuilder out = new StringBuilder(96);
        out.append('[');
        appendString(out, KEY_TAG);
        out.append(',').append(FORMAT_VERSION).append(',');
        appendString(out, report.producer());
        out.append(',').append(Long.toUnsignedString(report.epoch())).append(',');
        appendString(out, report.topic());
        out.append(',').append(report.partition()).append(']');
        return out.toString().getBytes(StandardCharsets.UTF_8);
    }

    private static void appendSeq(StringBuilder out, long seq) {
        if (seq < 0) {
            out.append("null");
        } else {
            out.append(seq);
        }
    }

    // Escapes as Python's json.dumps(ensure_ascii=False) does: quote, backslash and control
    // characters only; everything else is written as UTF-8.
    private static void appendString(StringBuilder out, String text) {
        out.append('"');
        for (int i = 0; i < text.length(); i++) {
            char ch = text.charAt(i);
            switch (ch) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                case '\b' -> out.append("\\b");
                case '\f' -> out.append("\\f");
                default -> {
                    if (ch < 0x20) {
                        out.append(String.format("\\u%04x", (int) ch));
                    } else {
                        out.append(ch);
                    }
                }
            }
        }
        out.append('"');
    }
}
