package io.gapwatch.clients.apps;

import io.gapwatch.clients.Stamps;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Future;
import java.util.function.Consumer;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.Callback;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.errors.TimeoutException;
import org.apache.kafka.common.metrics.KafkaMetric;

/**
 * A real KafkaProducer that never sends chosen stamped records: fault injection for the
 * test application, between the StampingProducer and Kafka. A "silent" drop is answered as
 * if the broker acknowledged it (a loss nobody saw: the monitor must find it from the log);
 * a "told" drop fails at once with a TimeoutException, as an expired batch would (the
 * application and the producer reports know it).
 */
final class DroppingProducer implements Producer<byte[], byte[]> {
    /** One record to drop: its partition and sequence, and whether the sender is told. */
    record Drop(int partition, long seq, boolean told) {}

    private final Producer<byte[], byte[]> inner;
    private final Map<Integer, Map<Long, Drop>> drops;
    private final Consumer<Drop> onDrop;

    DroppingProducer(Producer<byte[], byte[]> inner, Map<Integer, Map<Long, Drop>> drops, Consumer<Drop> onDrop) {
        this.inner = inner;
        this.drops = drops;
        this.onDrop = onDrop;
    }

    @Override
    public Future<RecordMetadata> send(ProducerRecord<byte[], byte[]> record) {
        return send(record, null);
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

    @Override
    public void flush() {
        inner.flush();
    }

    @Override
    public List<PartitionInfo> partitionsFor(String topic) {
        return inner.partitionsFor(topic);
    }

    @Override
    public Map<MetricName, ? extends Metric> metrics() {
        return inner.metrics();
    }

    @Override
    public void registerMetricForSubscription(KafkaMetric metric) {
        inner.registerMetricForSubscription(metric);
    }

    @Override
    public void unregisterMetricFromSubscription(KafkaMetric metric) {
        inner.unregisterMetricFromSubscription(metric);
    }

    @Override
    public Uuid clientInstanceId(Duration timeout) {
        return inner.clientInstanceId(timeout);
    }

    @Override
    public void close() {
        inner.close();
    }

    @Override
    public void close(Duration timeout) {
        inner.close(timeout);
    }

    @Override
    public void initTransactions() {
        throw new UnsupportedOperationException();
    }

    @Override
    public void beginTransaction() {
        throw new UnsupportedOperationException();
    }

    @Override
    public void sendOffsetsToTransaction(Map<TopicPartition, OffsetAndMetadata> offsets, ConsumerGroupMetadata group) {
        throw new UnsupportedOperationException();
    }

    @Override
    public void commitTransaction() {
        throw new UnsupportedOperationException();
    }

    @Override
    public void abortTransaction() {
        throw new UnsupportedOperationException();
    }
}
