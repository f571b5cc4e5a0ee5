package io.gapwatch.clients;

import java.util.List;

/**
 * One producer report: what one producer life stamped, had acknowledged and saw fail on one
 * partition. The fields are those of the wire format's "Producer reports" section
 * ({@code docs/wire-format.md}); sequences are unsigned, {@code -1} meaning "none".
 *
 * @param producer        the producer id
 * @param epoch           the producer's epoch (unsigned 64-bit)
 * @param topic           the topic the report is about
 * @param partition       the partition the report is about
 * @param highestAssigned the highest sequence stamped, or -1 if none
 * @param highestAcked    the highest sequence the broker acknowledged, or -1 if none
 * @param failed          inclusive [first, last] ranges of sends that failed, sorted, merged
 * @param isFinal         whether this is the last report of a cleanly closed producer
 */
public record ProducerReport(
        String producer,
        long epoch,
        String topic,
        int partition,
        long highestAssigned,
        long highestAcked,
        List<long[]> failed,
        boolean isFinal) {}
