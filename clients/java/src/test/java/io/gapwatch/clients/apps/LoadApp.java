package io.gapwatch.clients.apps;

import io.gapwatch.clients.DeliveryCounts;
import io.gapwatch.clients.StampingProducer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The test application of tests/integration/test_java_producer.py: {@code --threads} threads
 * share one StampingProducer and send {@code --records} records to {@code --topic}, half keyed
 * (placed by key hashing) and half keyless (the wrapper's sticky choice).
 *
 * <p>{@code --drop "p:seq:told,p:seq:silent,..."} never sends those stamped records (see
 * {@link DroppingProducer}). Every drop is logged on stdout as a JSON line
 * ({@code {"event":"dropped",...}}), and at the end one {@code {"event":"done",...}} line
 * with the producer id, epoch and counts; the test reads these lines.
 */
public final class LoadApp {
    private LoadApp() {}

    public static void main(String[] argv) throws Exception {
        Args args = new Args(argv);
        String topic = args.text("topic");
        int records = args.integer("records", 100_000);
        int threads = args.integer("threads", 8);
        Map<String, Object> config = new HashMap<>();
        config.put("bootstrap.servers", args.text("bootstrap"));
        config.put("acks", args.text("acks", "all"));
        config.put("linger.ms", args.integer("linger-ms", 5));
        config.put("gapwatch.producer.id", args.text("producer-id"));
        config.put("gapwatch.reports.topic", args.text("report-topic"));
        config.put("gapwatch.reports.interval.ms", args.integer("report-interval-ms", 1000));

        Map<Integer, Map<Long, DroppingProducer.Drop>> drops = parseDrops(args.text("drop", ""));
        StampingProducer<String, String> producer;
        if (drops.isEmpty()) {
            producer = new StampingProducer<>(config, new StringSerializer(), new StringSerializer());
        } else {
            // The fault injector wraps a real KafkaProducer with the same settings; the
            // StampingProducer's config says how that producer is set up.
            Map<String, Object> kafkaConfig = new HashMap<>(config);
            kafkaConfig.keySet().removeIf(k -> k.startsWith("gapwatch."));
            kafkaConfig.put("enable.idempotence", true);
            KafkaProducer<byte[], byte[]> kafka =
                    new KafkaProducer<>(kafkaConfig, new ByteArraySerializer(), new ByteArraySerializer());
            DroppingProducer dropping = new DroppingProducer(kafka, drops, drop -> System.out.printf(
                    "{\"event\":\"dropped\",\"partition\":%d,\"seq\":%d,\"told\":%b}%n",
                    drop.partition(), drop.seq(), drop.told()));
            producer = new StampingProducer<>(dropping, config, new StringSerializer(), new StringSerializer());
        }

        AtomicLong acked = new AtomicLong();
        AtomicLong failed = new AtomicLong();
        String value = "x".repeat(args.integer("value-bytes", 100));
        List<Thread> workers = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            int thread = t;
            Thread worker = new Thread(() -> {
                for (int i = thread; i < records; i += threads) {
                    String key = i % 2 == 0 ? "customer-" + (i % 997) : null;
                    producer.send(new ProducerRecord<>(topic, key, value), (metadata, error) -> {
                        if (error == null) {
                            acked.incrementAndGet();
                        } else {
                            failed.incrementAndGet();
                        }
                    });
                }
            }, "load-" + t);
            worker.start();
            workers.add(worker);
        }
        for (Thread worker : workers) {
            worker.join();
        }
        producer.close();
        DeliveryCounts counts = producer.counts();
        System.out.printf("{\"event\":\"done\",\"producer\":\"%s\",\"epoch\":\"%s\",\"sent\":%d,\"acked\":%d,"
                + "\"failed\":%d,\"reports_published\":%d,\"reports_failed\":%d}%n", producer.producerId(),
                Long.toUnsignedString(producer.epoch()), records, acked.get(), failed.get(),
                counts.reportsPublished(), counts.reportsFailed());
    }

    private static Map<Integer, Map<Long, DroppingProducer.Drop>> parseDrops(String spec) {
        Map<Integer, Map<Long, DroppingProducer.Drop>> drops = new HashMap<>();
        if (spec.isBlank()) {
            return drops;
        }
        for (String item : spec.split(",")) {
            String[] parts = item.trim().split(":");
            DroppingProducer.Drop drop = new DroppingProducer.Drop(Integer.parseInt(parts[0]),
                    Long.parseLong(parts[1]), parts[2].equals("told"));
            drops.computeIfAbsent(drop.partition(), p -> new HashMap<>()).put(drop.seq(), drop);
        }
        return drops;
    }
}
