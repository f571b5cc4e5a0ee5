package io.gapwatch.clients;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.util.Properties;
import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.junit.jupiter.api.Test;

/** The supplier as Kafka Streams itself instantiates it from {@code default.client.supplier}. */
class StreamsSupplierTest {
    @Test
    void exactlyOnceIsRefusedWithAClearMessage() throws Exception {
        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, "eos-app");
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, "127.0.0.1:1");
        props.put(StreamsConfig.DEFAULT_CLIENT_SUPPLIER_CONFIG, StampingClientSupplier.class.getName());
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        props.put(StreamsConfig.STATE_DIR_CONFIG, Files.createTempDirectory("gapwatch-eos").toString());
        props.put("gapwatch.reports.enabled", "false");
        StreamsBuilder builder = new StreamsBuilder();
        builder.stream("in").to("out");
        Throwable error = assertThrows(Throwable.class, () -> {
            try (KafkaStreams streams = new KafkaStreams(builder.build(), props)) {
                streams.start();
            }
        });
        Throwable cause = error;
        while (cause != null && !(cause instanceof ConfigException)) {
            cause = cause.getCause();
        }
        assertTrue(cause != null && cause.getMessage().contains("at-least-once"), error.toString());
    }
}
