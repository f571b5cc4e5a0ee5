package io.gapwatch.clients;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.kafka.common.config.ConfigException;
import org.junit.jupiter.api.Test;

/** Config rules: ordering-safe delivery settings, identity, transactions refused. */
class StampingConfigTest {
    private static Map<String, Object> base() {
        Map<String, Object> config = new HashMap<>();
        config.put("bootstrap.servers", "127.0.0.1:1");
        config.put("gapwatch.producer.id", "cfg-test");
        return config;
    }

    @Test
    void idempotenceIsSwitchedOnByDefault() {
        StampingConfig config = new StampingConfig(base());
        assertTrue(config.idempotence);
        assertEquals("all", config.acks);
        assertEquals(true, config.innerConfig.get("enable.idempotence"));
        assertFalse(config.innerConfig.containsKey("gapwatch.producer.id"), "gapwatch keys are not Kafka's");
    }

    @Test
    void withoutIdempotenceOneRequestInFlightIsSet() {
        Map<String, Object> given = base();
        given.put("acks", "1");
        StampingConfig config = new StampingConfig(given);
        assertFalse(config.idempotence);
        assertEquals(1, config.innerConfig.get("max.in.flight.requests.per.connection"));
    }

    @Test
    void aConfigLettingRetriesReorderIsRefused() {
        Map<String, Object> given = base();
        given.put("enable.idempotence", "false");
        given.put("max.in.flight.requests.per.connection", "5");
        ConfigException error = assertThrows(ConfigException.class, () -> new StampingConfig(given));
        assertTrue(error.getMessage().contains("max.in.flight.requests.per.connection"), error.getMessage());
        given.put("retries", "0");
        assertFalse(new StampingConfig(given).idempotence, "no retries: nothing can reorder");
    }

    @Test
    void transactionsAreRefused() {
        Map<String, Object> given = base();
        given.put("transactional.id", "tx-1");
        ConfigException error = assertThrows(ConfigException.class, () -> new StampingConfig(given));
        assertTrue(error.getMessage().contains("transactions"), error.getMessage());
    }

    @Test
    void producerIdsFollowTheWireFormat() {
        assertNull(Stamps.producerIdProblem("web-7/4121 ü"));
        assertEquals("has non-printable characters", Stamps.producerIdProblem("a\nb"));
        assertEquals("must be 1..128 characters", Stamps.producerIdProblem(""));
        assertEquals("must be 1..128 characters", Stamps.producerIdProblem("x".repeat(129)));
        Map<String, Object> given = base();
        given.put("gapwatch.producer.id", "tab\there");
        assertThrows(ConfigException.class, () -> new StampingConfig(given));
        assertNull(Stamps.producerIdProblem(StampingConfig.defaultProducerId()));
    }

    @Test
    void epochsAreUnsignedAndGrowWithinTheProcess() {
        Map<String, Object> given = base();
        given.put("gapwatch.producer.epoch", "18446744073709551615");
        assertEquals("18446744073709551615", Long.toUnsignedString(new StampingConfig(given).epoch));
        given.put("gapwatch.producer.epoch", "-1");
        assertThrows(ConfigException.class, () -> new StampingConfig(given));
        long first = Stamps.newEpoch();
        assertTrue(Stamps.newEpoch() > first);
    }

    @Test
    void reportTextIsEscapedAsJson() {
        ProducerReport report = new ProducerReport("a\"b\\c ü", 7, "t", 0, -1, -1, List.of(), true);
        assertEquals("{\"v\":1,\"producer\":\"a\\\"b\\\\c ü\",\"epoch\":7,\"topic\":\"t\",\"partition\":0,"
                + "\"assigned\":null,\"acked\":null,\"failed\":[],\"final\":true,\"acks\":\"1\","
                + "\"idempotence\":false,\"sent_at_ms\":9}",
                new String(ReportCodec.encodeValue(report, "1", false, 9), StandardCharsets.UTF_8));
    }

    @Test
    void streamsProducersGetTheirOwnIdsAndInternalTopicsStayUnstamped() {
        StampingClientSupplier supplier = new StampingClientSupplier(Map.of(
                "gapwatch.producer.id", "orders-app", "gapwatch.reports.enabled", "false", "application.id", "app"));
        Map<String, Object> producerConfig = new HashMap<>();
        producerConfig.put("bootstrap.servers", "127.0.0.1:1");
        producerConfig.put("client.id", "app-1-StreamThread-1-producer");
        try (StampingProducer<byte[], byte[]> producer =
                (StampingProducer<byte[], byte[]>) supplier.getProducer(producerConfig)) {
            assertEquals("orders-app/1-StreamThread-1-producer", producer.producerId());
        }
        assertTrue(StampingClientSupplier.isInternalTopic("app-store-changelog"));
        assertTrue(StampingClientSupplier.isInternalTopic("app-rekey-repartition"));
        assertFalse(StampingClientSupplier.isInternalTopic("orders-out"));
        producerConfig.put("transactional.id", "app-1");
        ConfigException error = assertThrows(ConfigException.class, () -> supplier.getProducer(producerConfig));
        assertTrue(error.getMessage().contains("at-least-once"), error.getMessage());
        Map<String, Object> longId = new HashMap<>(producerConfig);
        longId.remove("transactional.id");
        StampingClientSupplier long128 = new StampingClientSupplier(Map.of(
                "gapwatch.producer.id", "p".repeat(128), "gapwatch.reports.enabled", "false"));
        try (StampingProducer<byte[], byte[]> producer =
                (StampingProducer<byte[], byte[]>) long128.getProducer(longId)) {
            assertEquals(128, producer.producerId().length());
            assertNotEquals(-1, producer.producerId().indexOf("/app-1-StreamThread-1-producer"));
        }
    }
}
