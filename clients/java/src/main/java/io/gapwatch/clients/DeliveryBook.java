package io.gapwatch.clients;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Delivery bookkeeping of one producer life (id and epoch): per (topic, partition) the next
 * sequence, the highest acknowledged one and the ranges of failed sends, answered as
 * {@link ProducerReport}s. No I/O, no clock.
 *
 * <p>Thread-safe: sequences are assigned by sending threads (each under its partition's
 * lane lock), outcomes arrive on the producer's I/O thread, reports are taken by the
 * report publisher. Each stream guards its own state with its monitor, held only for a few
 * field updates, never while sending (a send that waits for buffer memory must not block
 * the I/O thread that frees it).
 */
final class DeliveryBook {
    /** The bookkeeping of one (topic, partition). */
    static final class Stream {
        final String topic;
        final int partition;
        private long nextSeq;
        private long highestAcked = -1;
        private long acknowledged;
        private long unacknowledged;
        // first -> last of inclusive, disjoint, non-adjacent ranges
        private final TreeMap<Long, Long> failed = new TreeMap<>();
        private long failedCount;
        private boolean changed;

        Stream(String topic, int partition) {
            this.topic = topic;
            this.partition = partition;
        }
    }

    private final String producer;
    private final long epoch;
    private final Map<String, Map<Integer, Stream>> streams = new ConcurrentHashMap<>();

    DeliveryBook(String producer, long epoch) {
        this.producer = producer;
        this.epoch = epoch;
    }

    Stream stream(String topic, int partition) {
        return streams.computeIfAbsent(topic, t -> new ConcurrentHashMap<>())
                .computeIfAbsent(partition, p -> new Stream(topic, p));
    }

    /** Hand out the stream's next sequence. */
    long assign(Stream stream) {
        synchronized (stream) {
            stream.changed = true;
            return stream.nextSeq++;
        }
    }

    /** The broker acknowledged {@code seq}. */
    void acknowledged(Stream stream, long seq) {
        synchronized (stream) {
            stream.acknowledged++;
            if (seq > stream.highestAcked) {
                stream.highestAcked = seq;
            }
            stream.changed = true;
        }
    }

    /** {@code seq} left with {@code acks=0}: written, never acknowledged. */
    void sentUnacknowledged(Stream stream, long seq) {
        synchronized (stream) {
            stream.unacknowledged++;
        }
    }

    /** Sending {@code seq} failed and the application was told (exception or callback). */
    void failed(Stream stream, long seq) {
        synchronized (stream) {
            if (addFailed(stream.failed, seq)) {
                stream.failedCount++;
            }
            stream.changed = true;
        }
    }

    private static boolean addFailed(TreeMap<Long, Long> ranges, long seq) {
        Map.Entry<Long, Long> below = ranges.floorEntry(seq);
        if (below != null && below.getValue() >= seq) {
            return false; // already failed (a callback and a thrown exception for one send)
        }
        long first = seq;
        long last = seq;
        if (below != null && below.getValue() == seq - 1) {
            first = below.getKey();
        }
        Long above = ranges.get(seq + 1);
        if (above != null) {
            last = above;
            ranges.remove(seq + 1);
        }
        ranges.put(first, last);
        return true;
    }

    private ProducerReport report(Stream stream, boolean isFinal) {
        List<long[]> failed = new ArrayList<>(stream.failed.size());
        for (Map.Entry<Long, Long> range : stream.failed.entrySet()) {
            failed.add(new long[] {range.getKey(), range.getValue()});
        }
        return new ProducerReport(producer, epoch, stream.topic, stream.partition,
                stream.nextSeq - 1, stream.highestAcked, List.copyOf(failed), isFinal);
    }

    /**
     * Reports of the streams that changed since the last call (of every stream if
     * {@code isFinal}); taking them marks the streams unchanged.
     */
    List<ProducerReport> takeReports(boolean isFinal) {
        List<ProducerReport> out = new ArrayList<>();
        for (Map<Integer, Stream> byPartition : streams.values()) {
            for (Stream stream : byPartition.values()) {
                synchronized (stream) {
                    if (isFinal || stream.changed) {
                        stream.changed = false;
                        out.add(report(stream, isFinal));
                    }
                }
            }
        }
        return out;
    }

    /** The current report of every stream, changing nothing. */
    List<ProducerReport> snapshot() {
        List<ProducerReport> out = new ArrayList<>();
        for (Map<Integer, Stream> byPartition : streams.values()) {
            for (Stream stream : byPartition.values()) {
                synchronized (stream) {
                    out.add(report(stream, false));
                }
            }
        }
        return out;
    }

    /** Have the next {@link #takeReports} include this stream again (its report failed). */
    void markChanged(String topic, int partition) {
        Map<Integer, Stream> byPartition = streams.get(topic);
        Stream stream = byPartition == null ? null : byPartition.get(partition);
        if (stream != null) {
            synchronized (stream) {
                stream.changed = true;
            }
        }
    }

    /** Totals over every stream: acknowledged, sent without acknowledgement, failed. */
    long[] totals() {
        long[] totals = new long[3];
        for (Map<Integer, Stream> byPartition : streams.values()) {
            for (Stream stream : byPartition.values()) {
                synchronized (stream) {
                    totals[0] += stream.acknowledged;
                    totals[1] += stream.unacknowledged;
                    totals[2] += stream.failedCount;
                }
            }
        }
        return totals;
    }
}
