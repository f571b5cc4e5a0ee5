package io.gapwatch.clients;

/**
 * What one {@link StampingProducer} has seen so far, over all its streams, for an
 * application's own metrics (the JVM side exports none itself).
 *
 * @param acknowledged       sends the broker acknowledged
 * @param sentUnacknowledged sends written with {@code acks=0}, never acknowledged
 * @param failed             sends that failed with an error the application received
 * @param reportsPublished   producer reports published to the control topic
 * @param reportsFailed      producer reports that could not be published (retried)
 */
public record DeliveryCounts(
        long acknowledged, long sentUnacknowledged, long failed, long reportsPublished, long reportsFailed) {}
