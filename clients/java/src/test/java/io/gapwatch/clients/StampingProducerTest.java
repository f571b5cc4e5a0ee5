package io.gapwatch.clients;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.producer.MockProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Cluster;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.errors.TimeoutException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.common.utils.Utils;
import org.junit.jupiter.api.Test;

/**
 * The wrapper's rules against Kafka's own {@link MockProducer} as the wrapped producer: it
 * records sends in the order they reach it (the order a KafkaProducer appends them to its
 * batches) and lets a test decide each outcome. Real brokers: tests/integration/test_java_producer.py.
 */
class StampingProducerTest {
    private static final String TOPIC = "orders";
    private static final int PARTITIONS = 6;

    private static Cluster cluster() {
        Node node = new Node(1, "127.0.0.1", 9092);
        List<PartitionInfo> partitions = new ArrayList<>();
        for (int p = 0; p < PARTITIONS; p++) {
            partitions.add(new PartitionInfo(TOPIC, p, node, new Node[] {node}, new Node[] {node}));
        }
        return new Cluster("c", List.of(node), partitions, java.util.Set.of(), java.util.Set.of());
    }

    private static MockProducer<byte[], byte[]> mock(boolean autoComplete) {
        return new MockProducer<>(cluster(), autoComplete, null, new ByteArraySerializer(), new ByteArraySerializer());
    }

    private static Map<String, Object> config(String acks) {
        Map<String, Object> config = new HashMap<>();
        config.put("bootstrap.servers", "127.0.0.1:1");
        config.put("acks", acks);
        config.put("gapwatch.producer.id", "unit-test");
        config.put("gapwatch.producer.epoch", "1700000000000");
        config.put("gapwatch.reports.enabled", "false");
        return config;
    }

    private static String header(ProducerRecord<byte[], byte[]> record, String name) {
        Header last = record.headers().lastHeader(name);
        return last == null ? null : new String(last.value(), StandardCharsets.UTF_8);
    }

    private static int count(ProducerRecord<byte[], byte[]> record, String name) {
        int n = 0;
        for (Header ignored : record.headers().headers(name)) {
            n++;
        }
        return n;
    }

    @Test
    void sequencesReachEachPartitionInOrderUnderEightThreads() throws Exception {
        MockProducer<byte[], byte[]> inner = mock(true);
        StampingProducer<String, String> producer = new StampingProducer<>(inner, config("all"),
                new StringSerializer(), new StringSerializer());
        int threads = 8;
        int perThread = 5000;
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        CountDownLatch start = new CountDownLatch(1);
        List<Future<?>> done = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            int thread = t;
            done.add(pool.submit(() -> {
                start.await();
                for (int i = 0; i < perThread; i++) {
                    // Half keyed (placed by key hashing), half keyless (the sticky choice).
                    String key = i % 2 == 0 ? "customer-" + (i % 97) : null;
                    producer.send(new ProducerRecord<>(TOPIC, key, "v-" + thread + "-" + i));
                }
                return null;
            }));
        }
        start.countDown();
        for (Future<?> f : done) {
            f.get(60, TimeUnit.SECONDS);
        }
        pool.shutdown();

        List<ProducerRecord<byte[], byte[]>> history = inner.history();
        assertEquals(threads * perThread, history.size());
        Map<Integer, Long> next = new HashMap<>();
        for (ProducerRecord<byte[], byte[]> record : history) {
            int partition = record.partition();
            long expected = next.getOrDefault(partition, 0L);
            assertEquals(Long.toString(expected), header(record, Stamps.HEADER_SEQ), "partition " + partition);
            next.put(partition, expected + 1);
            assertEquals("unit-test", header(record, Stamps.HEADER_PRODUCER));
            assertEquals("1700000000000", header(record, Stamps.HEADER_EPOCH));
            assertEquals(1, count(record, Stamps.HEADER_SEQ));
            if (record.key() != null) {
                assertEquals(Utils.toPositive(Utils.murmur2(record.key())) % PARTITIONS, partition);
            }
        }
        assertTrue(next.size() > 1, "keyless and keyed records spread over partitions");
        for (ProducerReport report : producer.reports()) {
            long sent = next.get(report.partition());
            assertEquals(sent - 1, report.highestAssigned());
            assertEquals(sent - 1, report.highestAcked());
            assertTrue(report.failed().isEmpty());
        }
        producer.close();
    }

    @Test
    void keylessRecordsStickToOnePartitionForAboutABatch() {
        MockProducer<byte[], byte[]> inner = mock(true);
        Map<String, Object> config = config("all");
        config.put("batch.size", "1000");
        StampingProducer<String, String> producer = new StampingProducer<>(inner, config,
                new StringSerializer(), new StringSerializer());
        for (int i = 0; i < 100; i++) {
            producer.send(new ProducerRecord<>(TOPIC, null, "x".repeat(100)));
        }
        List<ProducerRecord<byte[], byte[]>> history = inner.history();
        for (int batch = 0; batch < 10; batch++) {
            int first = history.get(batch * 10).partition();
            for (int i = 1; i < 10; i++) {
                assertEquals(first, history.get(batch * 10 + i).partition(), "record " + (batch * 10 + i));
            }
            if (batch > 0) {
                assertTrue(first != history.get(batch * 10 - 1).partition(), "switches after batch.size bytes");
            }
        }
        producer.close();
    }

    /** Sends every record to the last partition: proves the configured partitioner is used. */
    public static final class LastPartition implements org.apache.kafka.clients.producer.Partitioner {
        @Override
        public int partition(String topic, Object key, byte[] keyBytes, Object value, byte[] valueBytes,
                Cluster cluster) {
            return cluster.partitionCountForTopic(topic) - 1;
        }

        @Override
        public void close() {}

        @Override
        public void configure(Map<String, ?> configs) {}
    }

    @Test
    void aConfiguredPartitionerChoosesThePartitionBeforeTheStamp() {
        MockProducer<byte[], byte[]> inner = mock(true);
        Map<String, Object> config = config("all");
        config.put("partitioner.class", LastPartition.class.getName());
        StampingProducer<String, String> producer = new StampingProducer<>(inner, config,
                new StringSerializer(), new StringSerializer());
        producer.send(new ProducerRecord<>(TOPIC, "a", "v"));
        producer.send(new ProducerRecord<>(TOPIC, null, "v"));
        assertEquals(List.of(PARTITIONS - 1, PARTITIONS - 1), inner.history().stream().map(r -> r.partition()).toList());
        assertEquals("1", header(inner.history().get(1), Stamps.HEADER_SEQ));
        producer.close();
    }

    @Test
    void ignoringKeysMakesKeyedRecordsSticky() {
        MockProducer<byte[], byte[]> inner = mock(true);
        Map<String, Object> config = config("all");
        config.put("partitioner.ignore.keys", "true");
        StampingProducer<String, String> producer = new StampingProducer<>(inner, config,
                new StringSerializer(), new StringSerializer());
        for (int i = 0; i < 20; i++) {
            producer.send(new ProducerRecord<>(TOPIC, "customer-" + i, "v"));
        }
        assertEquals(1, inner.history().stream().map(r -> r.partition()).distinct().count(),
                "20 small records stay in one sticky partition instead of hashing their keys");
        producer.close();
    }

    @Test
    void reportsSayWhatWasAssignedAcknowledgedAndFailed() {
        MockProducer<byte[], byte[]> inner = mock(false);
        StampingProducer<String, String> producer = new StampingProducer<>(inner, config("all"),
                new StringSerializer(), new StringSerializer());
        for (int i = 0; i < 10; i++) {
            producer.send(new ProducerRecord<>(TOPIC, 2, "k", "v" + i));
        }
        for (int i = 0; i < 10; i++) {
            if (i == 3 || i == 4 || i == 7) {
                assertTrue(inner.errorNext(new TimeoutException("expired")));
            } else {
                assertTrue(inner.completeNext());
            }
        }
        inner.sendException = new KafkaException("buffer gone");
        assertThrows(KafkaException.class, () -> producer.send(new ProducerRecord<>(TOPIC, 2, "k", "v10")));
        inner.sendException = null;
        producer.send(new ProducerRecord<>(TOPIC, 2, "k", "v11"));
        assertTrue(inner.completeNext());

        List<ProducerReport> reports = producer.reports();
        assertEquals(1, reports.size());
        ProducerReport report = reports.get(0);
        assertEquals(11, report.highestAssigned());
        assertEquals(11, report.highestAcked());
        assertEquals(3, report.failed().size());
        assertArrayEquals(new long[] {3, 4}, report.failed().get(0));
        assertArrayEquals(new long[] {7, 7}, report.failed().get(1));
        assertArrayEquals(new long[] {10, 10}, report.failed().get(2), "a send that threw is reported");
        assertEquals(new DeliveryCounts(8, 0, 4, 0, 0), producer.counts());
        assertEquals("{\"v\":1,\"producer\":\"unit-test\",\"epoch\":1700000000000,\"topic\":\"orders\","
                + "\"partition\":2,\"assigned\":11,\"acked\":11,\"failed\":[[3,4],[7,7],[10,10]],\"final\":false,"
                + "\"acks\":\"all\",\"idempotence\":true,\"sent_at_ms\":5}",
                new String(ReportCodec.encodeValue(report, "all", true, 5), StandardCharsets.UTF_8));
        assertEquals("[\"gapwatch-report\",1,\"unit-test\",1700000000000,\"orders\",2]",
                new String(ReportCodec.encodeKey(report), StandardCharsets.UTF_8));
        producer.close();
    }

    @Test
    void acksZeroReportsNothingAcknowledged() {
        MockProducer<byte[], byte[]> inner = mock(true);
        StampingProducer<String, String> producer = new StampingProducer<>(inner, config("0"),
                new StringSerializer(), new StringSerializer());
        producer.send(new ProducerRecord<>(TOPIC, 0, "k", "v"));
        ProducerReport report = producer.reports().get(0);
        assertEquals(0, report.highestAssigned());
        assertEquals(-1, report.highestAcked());
        assertEquals(new DeliveryCounts(0, 1, 0, 0, 0), producer.counts());
        assertTrue(new String(ReportCodec.encodeValue(report, "0", false, 1), StandardCharsets.UTF_8)
                .contains("\"assigned\":0,\"acked\":null"));
        producer.close();
    }

    @Test
    void earlierStampsAreReplacedAndOtherHeadersKeptInOrder() {
        MockProducer<byte[], byte[]> inner = mock(true);
        StampingProducer<String, String> producer = new StampingProducer<>(inner, config("all"),
                new StringSerializer(), new StringSerializer());
        ProducerRecord<String, String> forwarded = new ProducerRecord<>(TOPIC, 1, "k", "v");
        forwarded.headers().add("trace", "a".getBytes(StandardCharsets.UTF_8))
                .add(Stamps.HEADER_PRODUCER, "upstream".getBytes(StandardCharsets.UTF_8))
                .add(Stamps.HEADER_EPOCH, "5".getBytes(StandardCharsets.UTF_8))
                .add(Stamps.HEADER_SEQ, "99".getBytes(StandardCharsets.UTF_8))
                .add("span", "b".getBytes(StandardCharsets.UTF_8));
        producer.send(forwarded);
        ProducerRecord<byte[], byte[]> sent = inner.history().get(0);
        List<String> names = new ArrayList<>();
        sent.headers().forEach(h -> names.add(h.key()));
        assertEquals(List.of("trace", "span", Stamps.HEADER_PRODUCER, Stamps.HEADER_EPOCH, Stamps.HEADER_SEQ), names);
        assertEquals("unit-test", header(sent, Stamps.HEADER_PRODUCER));
        assertEquals("0", header(sent, Stamps.HEADER_SEQ));
        // The caller's record may be sent again (an application retry): it gets a new sequence.
        producer.send(forwarded);
        assertEquals("1", header(inner.history().get(1), Stamps.HEADER_SEQ));
        producer.close();
    }

    @Test
    void aPartitionTheTopicDoesNotHaveFailsWithoutUsingASequence() {
        MockProducer<byte[], byte[]> inner = mock(true);
        StampingProducer<String, String> producer = new StampingProducer<>(inner, config("all"),
                new StringSerializer(), new StringSerializer());
        KafkaException error = assertThrows(KafkaException.class,
                () -> producer.send(new ProducerRecord<>(TOPIC, PARTITIONS, "k", "v")));
        assertTrue(error.getMessage().contains("Invalid partition"), error.getMessage());
        assertTrue(producer.reports().isEmpty());
        assertTrue(inner.history().isEmpty());
        producer.close();
    }

    @Test
    void sendAfterCloseUsesNoSequence() {
        MockProducer<byte[], byte[]> inner = mock(true);
        StampingProducer<String, String> producer = new StampingProducer<>(inner, config("all"),
                new StringSerializer(), new StringSerializer());
        producer.close();
        assertThrows(IllegalStateException.class, () -> producer.send(new ProducerRecord<>(TOPIC, 0, "k", "v")));
        assertTrue(producer.reports().isEmpty());
        assertThrows(UnsupportedOperationException.class, producer::initTransactions);
        assertFalse(inner.transactionInitialized());
    }
}
