package io.gapwatch.clients;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Future;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Predicate;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.Callback;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.Partitioner;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.common.header.Headers;
import org.apache.kafka.common.metrics.KafkaMetric;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Utils;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A drop-in {@link Producer} that stamps every record for gapwatch ({@code docs/producer.md}).
 *
 * <p>Constructed like {@link KafkaProducer}; the producer id is the config key
 * {@code gapwatch.producer.id}. How one {@code send} works, in order:
 *
 * <ol>
 *   <li><b>Serialise once</b>, with the configured serializers; the wrapped producer gets bytes.
 *   <li><b>Partition before stamping</b> ({@link PartitionChooser}): the record's own
 *       partition, else where Kafka would put it.
 *   <li><b>One lane per partition</b>: the next sequence is assigned and the record handed to
 *       the wrapped producer (which appends it to the partition's batch inside {@code send})
 *       under the partition's lock, so sequences reach the batches in order however many
 *       threads share the producer. Idempotence (or one request in flight) keeps that order
 *       in the log ({@link StampingConfig}).
 *   <li><b>A new record</b> carries the caller's headers, in order, minus any earlier stamp,
 *       then this producer's three stamp headers: a sent record's headers are read-only.
 *   <li><b>Every sequence has an outcome</b>: acknowledged, sent unacknowledged ({@code acks=0})
 *       or failed, including a {@code send} that threw after its sequence was assigned, so a
 *       used sequence is reported, never silently missing.
 * </ol>
 *
 * <p>Producer reports are published to the control topic every
 * {@code gapwatch.reports.interval.ms} and, final, on {@code close}. Transactions are refused.
 */
public final class StampingProducer<K, V> implements Producer<K, V> {
    private static final Logger log = LoggerFactory.getLogger(StampingProducer.class);

    /** A partition's lock and bookkeeping. */
    private static final class Lane extends ReentrantLock {
        private static final long serialVersionUID = 1L;
        final transient DeliveryBook.Stream stream;

        Lane(DeliveryBook.Stream stream) {
            this.stream = stream;
        }
    }

    private final Producer<byte[], byte[]> inner;
    private final StampingConfig config;
    private final Serializer<K> keySerializer;
    private final Serializer<V> valueSerializer;
    private final PartitionChooser chooser;
    private final Stamps stamps;
    private final DeliveryBook book;
    private final ReportPublisher publisher; // null: reports disabled
    private final Predicate<String> isStamped;
    private final boolean isUnacknowledged; // acks=0: a completed send was written, never acknowledged
    private final Map<String, Lane[]> lanes = new ConcurrentHashMap<>();
    private volatile boolean warnedRestamp;
    private volatile boolean closed;

    /** Like {@code new KafkaProducer<>(configs)}: serializers from the config. */
    public StampingProducer(Map<String, Object> configs) {
        this(configs, null, null);
    }

    /** Like {@code new KafkaProducer<>(properties)}. */
    public StampingProducer(Properties properties) {
        this(Utils.propsToMap(properties), null, null);
    }

    /** Like {@code new KafkaProducer<>(properties, keySerializer, valueSerializer)}. */
    public StampingProducer(Properties properties, Serializer<K> keySerializer, Serializer<V> valueSerializer) {
        this(Utils.propsToMap(properties), keySerializer, valueSerializer);
    }

    /** Like {@code new KafkaProducer<>(configs, keySerializer, valueSerializer)}. */
    public StampingProducer(Map<String, Object> configs, Serializer<K> keySerializer, Serializer<V> valueSerializer) {
        this(null, configs, keySerializer, valueSerializer, topic -> true);
    }

    /**
     * Stamps what an existing byte-array producer sends (one your framework built, or a
     * producer that injects faults in a test application). {@code configs} still says how the
     * wrapped producer is set up (acks, idempotence, batch size, partitioner) and where
     * reports go; the caller owns keeping the two consistent.
     */
    public StampingProducer(Producer<byte[], byte[]> inner, Map<String, Object> configs,
            Serializer<K> keySerializer, Serializer<V> valueSerializer) {
        this(inner, configs, keySerializer, valueSerializer, topic -> true);
    }

    StampingProducer(Producer<byte[], byte[]> inner, Map<String, Object> configs, Serializer<K> keySerializer,
            Serializer<V> valueSerializer, Predicate<String> isStamped) {
        this.config = new StampingConfig(configs);
        this.keySerializer = keySerializer != null ? keySerializer : configuredSerializer(configs, true);
        this.valueSerializer = valueSerializer != null ? valueSerializer : configuredSerializer(configs, false);
        this.inner = inner != null ? inner
                : new KafkaProducer<>(config.innerConfig, new ByteArraySerializer(), new ByteArraySerializer());
        this.isStamped = isStamped;
        this.isUnacknowledged = "0".equals(config.acks);
        Object batchSize = configs.get(ProducerConfig.BATCH_SIZE_CONFIG);
        Object ignoreKeys = configs.get(ProducerConfig.PARTITIONER_IGNORE_KEYS_CONFIG);
        this.chooser = new PartitionChooser(this.inner, configuredPartitioner(configs),
                ignoreKeys != null && Boolean.parseBoolean(ignoreKeys.toString().trim()),
                batchSize == null ? 16384 : Integer.parseInt(batchSize.toString().trim()));
        this.stamps = new Stamps(config.producerId, config.epoch);
        this.book = new DeliveryBook(config.producerId, config.epoch);
        this.publisher = config.reportsEnabled ? new ReportPublisher(book, config) : null;
        if (publisher != null) {
            publisher.start();
        }
    }

    @SuppressWarnings("unchecked")
    private static <T> Serializer<T> configuredSerializer(Map<String, Object> configs, boolean isKey) {
        String key = isKey ? ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG : ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG;
        Object setting = configs.get(key);
        if (setting == null) {
            throw new ConfigException(key, null, "no serializer given and none configured");
        }
        Serializer<T> serializer = (Serializer<T>) newInstance(key, setting);
        serializer.configure(configs, isKey);
        return serializer;
    }

    private static Partitioner configuredPartitioner(Map<String, Object> configs) {
        Object setting = configs.get(ProducerConfig.PARTITIONER_CLASS_CONFIG);
        if (setting == null) {
            return null;
        }
        Partitioner partitioner = (Partitioner) newInstance(ProducerConfig.PARTITIONER_CLASS_CONFIG, setting);
        partitioner.configure(configs);
        return partitioner;
    }

    private static Object newInstance(String key, Object setting) {
        try {
            Class<?> type = setting instanceof Class<?> c ? c
                    : Class.forName(setting.toString().trim(), true, Utils.getContextOrKafkaClassLoader());
            return Utils.newInstance(type);
        } catch (ClassNotFoundException e) {
            throw new ConfigException(key, setting, "class not found");
        }
    }

    /** This producer's id, as stamped on every record. */
    public String producerId() {
        return config.producerId;
    }

    /** This producer life's epoch (unsigned), as stamped on every record. */
    public long epoch() {
        return config.epoch;
    }

    /** The current report of every (topic, partition) this producer wrote to. */
    public List<ProducerReport> reports() {
        return book.snapshot();
    }

    /** Counts of outcomes and of published reports so far. */
    public DeliveryCounts counts() {
        long[] totals = book.totals();
        return new DeliveryCounts(totals[0], totals[1], totals[2],
                publisher == null ? 0 : publisher.publishedCount(), publisher == null ? 0 : publisher.failedCount());
    }

    /** Publish the reports of the streams that changed now rather than at the next interval. */
    public void publishReports() {
        if (publisher != null) {
            publisher.publishNow();
        }
    }

    // --- sending ----------------------------------------------------------------------------

    @Override
    public Future<RecordMetadata> send(ProducerRecord<K, V> record) {
        return send(record, null);
    }

    @Override
    public Future<RecordMetadata> send(ProducerRecord<K, V> record, Callback callback) {
        if (closed) {
            throw new IllegalStateException("Cannot perform operation after producer has been closed");
        }
        String topic = record.topic();
        Headers headers = record.headers();
        byte[] keyBytes = keySerializer.serialize(topic, headers, record.key());
        byte[] valueBytes = valueSerializer.serialize(topic, headers, record.value());
        if (!isStamped.test(topic)) {
            return inner.send(new ProducerRecord<>(topic, record.partition(), record.timestamp(),
                    keyBytes, valueBytes, headers), callback);
        }
        Integer explicit = record.partition();
        if (explicit != null) {
            chooser.checkExplicit(topic, explicit);
        }
        int partition = explicit != null ? explicit : chooser.choose(topic, record.key(), keyBytes,
                record.value(), valueBytes, (keyBytes == null ? 0 : keyBytes.length)
                        + (valueBytes == null ? 0 : valueBytes.length));
        Lane lane = lane(topic, partition);
        DeliveryBook.Stream stream = lane.stream;
        lane.lock();
        try {
            long seq = book.assign(stream);
            ProducerRecord<byte[], byte[]> stamped =
                    new ProducerRecord<>(topic, partition, record.timestamp(), keyBytes, valueBytes);
            stamps.stamp(headers, stamped.headers(), seq);
            if (!warnedRestamp && stamps.hasReplacedStamp()) {
                warnedRestamp = true; // once per producer: a forwarding pipeline would log per record
                log.warn("gapwatch: records to {} already carry gapwatch headers; replacing them with this "
                        + "producer's stamp", topic);
            }
            try {
                return inner.send(stamped, new Outcome(book, stream, seq, isUnacknowledged, callback));
            } catch (RuntimeException e) {
                book.failed(stream, seq); // the caller is told by this exception: failed, not missing
                throw e;
            }
        } finally {
            lane.unlock();
        }
    }

    private Lane lane(String topic, int partition) {
        Lane[] byPartition = lanes.get(topic);
        if (byPartition != null && partition < byPartition.length && byPartition[partition] != null) {
            return byPartition[partition];
        }
        synchronized (lanes) {
            byPartition = lanes.get(topic);
            Lane[] grown = byPartition == null ? new Lane[partition + 1]
                    : java.util.Arrays.copyOf(byPartition, Math.max(byPartition.length, partition + 1));
            if (grown[partition] == null) {
                grown[partition] = new Lane(book.stream(topic, partition));
            }
            lanes.put(topic, grown);
            return grown[partition];
        }
    }

    /** Books a send's outcome, then calls the caller's callback. Runs on the I/O thread. */
    private static final class Outcome implements Callback {
        private final DeliveryBook book;
        private final DeliveryBook.Stream stream;
        private final long seq;
        private final boolean unacknowledged;
        private final Callback callback;

        Outcome(DeliveryBook book, DeliveryBook.Stream stream, long seq, boolean unacknowledged, Callback callback) {
            this.book = book;
            this.stream = stream;
            this.seq = seq;
            this.unacknowledged = unacknowledged;
            this.callback = callback;
        }

        @Override
        public void onCompletion(RecordMetadata metadata, Exception exception) {
            if (exception != null) {
                book.failed(stream, seq);
            } else if (unacknowledged) {
                book.sentUnacknowledged(stream, seq);
            } else {
                book.acknowledged(stream, seq);
            }
            if (callback != null) {
                callback.onCompletion(metadata, exception);
            }
        }
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

    // --- closing ----------------------------------------------------------------------------

    @Override
    public void close() {
        close(Duration.ofMillis(Long.MAX_VALUE));
    }

    /**
     * Flush and close the wrapped producer (every outcome is then known), then publish the
     * final report of every stream (bounded by {@code gapwatch.reports.timeout.ms}).
     */
    @Override
    public void close(Duration timeout) {
        closeWith(timeout, true);
    }

    /**
     * Close without the final report, as a crash would: the monitor then cannot tell the
     * end of the streams from loss at their tail, which is what fault tests want.
     */
    public void closeWithoutFinalReport(Duration timeout) {
        closeWith(timeout, false);
    }

    private void closeWith(Duration timeout, boolean finalReport) {
        if (closed) {
            return;
        }
        closed = true;
        try {
            inner.close(timeout);
        } finally {
            try {
                if (publisher != null) {
                    publisher.close(finalReport);
                }
            } finally {
                chooser.close();
                keySerializer.close();
                valueSerializer.close();
            }
        }
    }

    // --- transactions: refused --------------------------------------------------------------

    private static UnsupportedOperationException noTransactions() {
        return new UnsupportedOperationException("gapwatch's StampingProducer does not support transactions: "
                + "records of an aborted transaction never become visible, which gapwatch would report as loss");
    }

    @Override
    public void initTransactions() {
        throw noTransactions();
    }

    @Override
    public void beginTransaction() {
        throw noTransactions();
    }

    @Override
    public void sendOffsetsToTransaction(Map<TopicPartition, OffsetAndMetadata> offsets,
            ConsumerGroupMetadata groupMetadata) {
        throw noTransactions();
    }

    @Override
    public void commitTransaction() {
        throw noTransactions();
    }

    @Override
    public void abortTransaction() {
        throw noTransactions();
    }
}
