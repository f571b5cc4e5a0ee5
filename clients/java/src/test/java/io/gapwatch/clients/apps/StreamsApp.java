package io.gapwatch.clients.apps;

import io.gapwatch.clients.StampingClientSupplier;
import java.nio.file.Files;
import java.time.Duration;
import java.util.Locale;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Repartitioned;

/**
 * The Kafka Streams test application of tests/integration/test_java_producer.py: re-keys the
 * records of {@code --input} (through an internal {@code -rekey-repartition} topic), upper-cases
 * their values and writes them to {@code --output}, with producers from
 * {@link StampingClientSupplier} set as {@code default.client.supplier}. Two stream threads,
 * at-least-once. Stops after {@code --expect} records reached the output step, closing cleanly
 * (final producer reports), and prints one {@code {"event":"done",...}} line.
 */
public final class StreamsApp {
    private StreamsApp() {}

    public static void main(String[] argv) throws Exception {
        Args args = new Args(argv);
        long expect = args.integer("expect", 1);
        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, args.text("app-id"));
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args.text("bootstrap"));
        props.put(StreamsConfig.DEFAULT_CLIENT_SUPPLIER_CONFIG, StampingClientSupplier.class.getName());
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, args.text("guarantee", StreamsConfig.AT_LEAST_ONCE));
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 2);
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 200);
        props.put(StreamsConfig.STATE_DIR_CONFIG, Files.createTempDirectory("gapwatch-streams").toString());
        props.put("gapwatch.producer.id", args.text("producer-id"));
        props.put("gapwatch.reports.topic", args.text("report-topic"));
        props.put("gapwatch.reports.interval.ms", "1000");

        AtomicLong processed = new AtomicLong();
        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(args.text("input"), Consumed.with(Serdes.String(), Serdes.String()))
                .selectKey((key, value) -> value.substring(value.length() - 1))
                .repartition(Repartitioned.<String, String>as("rekey")
                        .withKeySerde(Serdes.String()).withValueSerde(Serdes.String()))
                .mapValues(value -> value.toUpperCase(Locale.ROOT))
                .peek((key, value) -> processed.incrementAndGet())
                .to(args.text("output"), Produced.with(Serdes.String(), Serdes.String()));

        try (KafkaStreams streams = new KafkaStreams(builder.build(), props)) {
            streams.setUncaughtExceptionHandler(error -> {
                System.out.printf("{\"event\":\"error\",\"error\":\"%s\"}%n",
                        error.toString().replace("\\", "\\\\").replace("\"", "\\\""));
                System.out.flush();
                Runtime.getRuntime().halt(2);
                return null;
            });
            streams.start();
            long deadline = System.nanoTime() + Duration.ofSeconds(args.integer("timeout-s", 120)).toNanos();
            while (processed.get() < expect && System.nanoTime() < deadline) {
                Thread.sleep(100);
            }
            streams.close(Duration.ofSeconds(60));
        }
        System.out.printf("{\"event\":\"done\",\"processed\":%d}%n", processed.get());
        System.exit(processed.get() >= expect ? 0 : 1);
    }
}
