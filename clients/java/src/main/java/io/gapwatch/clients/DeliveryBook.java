package io.gapwatch.clients;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
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
 * <p>Thread-safe: sequences are assigned by sending threads, one at a time per stream
 * (callers hold the partition's lane lock), outcomes arrive on the producer's I/O thread,
 * reports are taken by the report publisher. The next sequence and the changed flag are
 * volatile, so assigning takes no monitor: a monitor shared by the sending thread and the
 * I/O thread was contended on every record and cost a third of the throughput. The outcome
 * state is guarded by the stream's monitor, held only for a few field updates and never
 * while sending (a send that waits for buffer memory must not block the I/O thread that
 * frees it). A report reads the outcomes before the next sequence, so its acknowledged and
 * failed sequences are never above its highest assigned one.
 */
final class DeliveryBook {
    /** The bookkeeping of one (topic, partition). */
    static final class Stream {
        final String topic;
        final int partition;
        // Written only by the thread holding the stream's lane lock (a release store, NEXT_SEQ).
        private volatile long nextSeq;
        private volatile boolean changed;
        // Guarded by this.
        private long highestAcked = -1;
        private long acknowledged;
        private long unacknowledged;
        // first -> last of inclusive, disjoint, non-adjacent ranges
        private final TreeMap<Long, Long> failed = new TreeMap<>();
        private long failedCount;

        Stream(String topic, int partition) {
            this.topic = topic;
            this.partition = partition;
        }
    }

    // A release store suffices for the next sequence: its one writer holds the lane lock, and a
    // report only needs to see it no older than the outcomes it read before; a full volatile
    // store would add a fence to every send.
    private static final VarHandle NEXT_SEQ;

    static {
        try {
            NEXT_SEQ = MethodHandles.lookup().findVarHandle(Stream.class, "nextSeq", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
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

    /** Hand out the stream's next sequence; callers serialise this per stream (lane lock). */
    long assign(Stream stream) {
        long seq = stream.nextSeq;
        NEXT_SEQ.setRelease(stream, seq + 1);
        if (!stream.changed) {
            stream.changed = true;
        }
        return seq;
    }

    /** The broker acknowledged {@code seq}. */
    void acknowledged(Stream stream, long seq) {
        synchronized (stream) {
            stream.acknowledged++;
            if (seq > stream.highestAcked) {
                stream.highestAcked = seq;
            }
        }
        if (!stream.changed) {
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
        }
        stream.changed = true;
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
        long highestAcked;
        List<long[]> failed;
        synchronized (stream) {
            highestAcked = stream.highestAcked;
            failed = new ArrayList<>(stream.failed.size());
            for (Map.Entry<Long, Long> range : stream.failed.entrySet()) {
                failed.add(new long[] {range.getKey(), range.getValue()});
            }
        }
        // Read after the outcomes: every sequence with an outcome was assigned before it.
        long highestAssigned = stream.nextSeq - 1;
        return new ProducerReport(producer, epoch, stream.topic, stream.partition,
                highestAssigned, highestAcked, List.copyOf(failed), isFinal);
    }

    /**
     * Reports of the streams that changed since the last call (of every stream if
     * {@code isFinal}); taking them marks the streams unchanged.
     */
    List<ProducerReport> takeReports(boolean isFinal) {
        List<ProducerReport> out = new ArrayList<>();
        for (Map<Integer, Stream> byPartition : streams.values()) {
            for (Stream stream : byPartition.values()) {
                if (isFinal || stream.changed) {
                    // Cleared before reading: a change racing with this report sets it again.
                    stream.changed = false;
                    out.add(report(stream, isFinal));
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
                out.add(report(stream, false));
            }
        }
        return out;
    }

    /** Have the next {@link #takeReports} include this stream again (its report failed). */
    void markChanged(String topic, int partition) {
        Map<Integer, Stream> byPartition = streams.get(topic);
        Stream stream = byPartition == null ? null : byPartition.get(partition);
        if (stream != null) {
            stream.changed = true;
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
