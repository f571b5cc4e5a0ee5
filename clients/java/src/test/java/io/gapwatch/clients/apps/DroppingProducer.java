package io.gapwatch.clients.apps;

import io.gapwatch.clients.Stamps;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Future;
import java.util.function.Consumer;
import org.apache.kafka.clients.producer.Callback;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TimeoutException;

/**
 * A real KafkaProducer that never sends chosen stamped records: fault injection for the
 * test application, between the StampingProducer and Kafka. A "silent" drop is answered as
 * if the broker acknowledged it (a loss nobody saw: the monitor must find it from the log);
 * a "told" drop fails at once with a TimeoutException, as an expired batch would (the
 * application and the producer reports know it).
 */
final class DroppingProducer extends ForwardingProducer {
    /** One record to drop: its partition and sequence, and whether the sender is told. */
    record Drop(int partition, long seq, boolean told) {}

    private final Map<Integer, Map<Long, Drop>> drops;
    private final Consumer<Drop> onDrop;

    DroppingProducer(Producer<byte[], byte[]> inner, Map<Integer, Map<Long, Drop>> drops, Consumer<Drop> onDrop) {
        super(inner);
        this.drops = drops;
        this.onDrop = onDrop;
    }

    @Override
    public Future<RecordMetadata> send(ProducerRecord<byte[], byte[]> record, Callback callback) {
        Map<Long, Drop> inPartition = drops.get(record.partition());
        if (inPartition != null) {
            long seq = Long.parseLong(new String(record.headers().lastHeader(Stamps.HEADER_SEQ).value(),
                    StandardCharsets.US_ASCII));
            Drop drop = inPartition.get(seq);
            if (drop != null) {
                onDrop.accept(drop);
                CompletableFuture<RecordMetadata> future = new CompletableFuture<>();
                if (drop.told()) {
                    TimeoutException error = new TimeoutException("dropped on purpose by the test application");
                    callback.onCompletion(null, error);
                    future.completeExceptionally(error);
                } else {
                    RecordMetadata fake = new RecordMetadata(
                            new TopicPartition(record.topic(), record.partition()), -1, 0, -1, -1, -1);
                    callback.onCompletion(fake, null);
                    future.complete(fake);
                }
                return future;
            }
        }
        return inner.send(record, callback);
    }
}
