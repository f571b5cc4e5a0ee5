package io.gapwatch.clients.apps;

import io.gapwatch.clients.StampingProducer;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.utils.Utils;

/**
 * The JVM side of bench/bench_java_producer.py: the same keyed records, same topic and same
 * settings through three producers, in rotating order, several rounds, in one JVM:
 *
 * <ul>
 *   <li>{@code bare}: KafkaProducer, no headers;
 *   <li>{@code bare+headers}: KafkaProducer with the three headers added by the caller as
 *       docs/wire-format.md shows (partition by murmur2, a sequence per partition taken with
 *       the send under one lock per partition);
 *   <li>{@code stamping}: StampingProducer (reports on).
 * </ul>
 *
 * Every variant runs once untimed before the rounds (JIT compilation of its own path), and
 * each producer first sends a tenth of the records untimed and rests a second (set-up is
 * paid once per producer, not per record). Prints one JSON line per run: variant, records
 * per wall-clock second, per second of this JVM's CPU time (every thread: senders, Kafka's
 * I/O thread, GC, the report publisher; the broker runs in another process) and per second
 * of the sending threads' own CPU time (what {@code send} costs its caller, where a wrapper
 * does its work).
 */
public final class ProducerBench {
    private ProducerBench() {}

    private interface Variant {
        Producer<byte[], byte[]> open(Map<String, Object> settings);
    }

    public static void main(String[] argv) throws Exception {
        Args args = new Args(argv);
        String topic = args.text("topic");
        int records = args.integer("records", 200_000);
        int rounds = args.integer("rounds", 7);
        int threads = args.integer("threads", 1);
        int partitions = args.integer("partitions", 6);
        Map<String, Object> settings = new HashMap<>();
        settings.put("bootstrap.servers", args.text("bootstrap"));
        settings.put("acks", "all");
        settings.put("linger.ms", 5);
        settings.put("batch.size", 65536);

        Random random = new Random(1);
        byte[] value = new byte[args.integer("value-bytes", 100)];
        random.nextBytes(value);
        byte[][] keys = new byte[records][];
        for (int i = 0; i < records; i++) {
            keys[i] = ("key-" + random.nextInt(1000)).getBytes(StandardCharsets.UTF_8);
        }
        Map<String, Variant> variants = new java.util.LinkedHashMap<>();
        variants.put("bare", s -> new KafkaProducer<>(s, new ByteArraySerializer(), new ByteArraySerializer()));
        variants.put("bare+headers", s -> new HandStamped(
                new KafkaProducer<>(s, new ByteArraySerializer(), new ByteArraySerializer()), partitions));
        variants.put("stamping", s -> {
            Map<String, Object> stamped = new HashMap<>(s);
            stamped.put("gapwatch.producer.id", "bench/1");
            stamped.put("gapwatch.reports.topic", args.text("report-topic"));
            stamped.put("gapwatch.reports.enabled", args.text("reports", "true"));
            return new StampingProducer<>(stamped, new ByteArraySerializer(), new ByteArraySerializer());
        });
        List<String> names = new ArrayList<>(variants.keySet());
        for (Variant variant : variants.values()) {
            run(variant, settings, topic, keys, value, threads); // warm-up: JIT, connections
        }
        for (int round = 0; round < rounds; round++) {
            for (int i = 0; i < names.size(); i++) {
                String name = names.get((round + i) % names.size());
                double[] result = run(variants.get(name), settings, topic, keys, value, threads);
                System.out.printf("{\"round\":%d,\"variant\":\"%s\",\"records_per_s\":%.1f,"
                        + "\"records_per_cpu_s\":%.1f,\"records_per_send_cpu_s\":%.1f}%n",
                        round + 1, name, result[0], result[1], result[2]);
            }
        }
    }

    private static final ThreadMXBean THREADS = ManagementFactory.getThreadMXBean();

    private static double cpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean())
                .getProcessCpuTime();
    }

    private static double[] run(Variant variant, Map<String, Object> settings, String topic, byte[][] keys,
            byte[] value, int threads) throws InterruptedException {
        try (Producer<byte[], byte[]> producer = variant.open(settings)) {
            // Before the clock starts: connections and metadata, and for the stamping producer
            // its report publisher's own producer and admin client, all set up once per
            // producer, which would otherwise weigh on a run of a second or two.
            for (int i = 0; i < Math.min(keys.length / 10, 20_000); i++) {
                producer.send(new ProducerRecord<>(topic, keys[i], value));
            }
            producer.flush();
            Thread.sleep(1000);
            AtomicLong failed = new AtomicLong();
            AtomicLong sendCpuNanos = new AtomicLong();
            double cpuStart = cpuNanos();
            long start = System.nanoTime();
            List<Thread> workers = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int first = t;
                Thread worker = new Thread(() -> {
                    long threadCpuStart = THREADS.getCurrentThreadCpuTime();
                    for (int i = first; i < keys.length; i += threads) {
                        producer.send(new ProducerRecord<>(topic, keys[i], value), (m, e) -> {
                            if (e != null) {
                                failed.incrementAndGet();
                            }
                        });
                    }
                    sendCpuNanos.addAndGet(THREADS.getCurrentThreadCpuTime() - threadCpuStart);
                });
                worker.start();
                workers.add(worker);
            }
            for (Thread worker : workers) {
                worker.join();
            }
            producer.flush();
            double seconds = (System.nanoTime() - start) / 1e9;
            double cpuSeconds = (cpuNanos() - cpuStart) / 1e9;
            if (failed.get() > 0) {
                throw new IllegalStateException(failed.get() + " sends failed");
            }
            return new double[] {keys.length / seconds, keys.length / cpuSeconds,
                keys.length / (sendCpuNanos.get() / 1e9)};
        }
    }

    /** A KafkaProducer stamped by its caller, as docs/wire-format.md's Java example does. */
    private static final class HandStamped extends ForwardingProducer {
        private final int partitions;
        private final byte[] producerId = "bench/1".getBytes(StandardCharsets.UTF_8);
        private final byte[] epoch = Long.toString(System.currentTimeMillis()).getBytes(StandardCharsets.US_ASCII);
        private final long[] next;
        private final ReentrantLock[] locks;

        HandStamped(Producer<byte[], byte[]> inner, int partitions) {
            super(inner);
            this.partitions = partitions;
            this.next = new long[partitions];
            this.locks = new ReentrantLock[partitions];
            for (int p = 0; p < partitions; p++) {
                locks[p] = new ReentrantLock();
            }
        }

        @Override
        public java.util.concurrent.Future<org.apache.kafka.clients.producer.RecordMetadata> send(
                ProducerRecord<byte[], byte[]> record, org.apache.kafka.clients.producer.Callback callback) {
            int partition = Utils.toPositive(Utils.murmur2(record.key())) % partitions;
            locks[partition].lock();
            try {
                long seq = next[partition]++;
                ProducerRecord<byte[], byte[]> stamped =
                        new ProducerRecord<>(record.topic(), partition, record.key(), record.value());
                stamped.headers()
                        .add("gapwatch-producer", producerId)
                        .add("gapwatch-epoch", epoch)
                        .add("gapwatch-seq", Long.toString(seq).getBytes(StandardCharsets.US_ASCII));
                return inner.send(stamped, callback);
            } finally {
                locks[partition].unlock();
            }
        }
    }
}
