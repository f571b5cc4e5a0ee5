package io.gapwatch.clients;

import java.util.HashMap;
import java.util.Map;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.Configurable;
import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.streams.KafkaClientSupplier;

/**
 * A Kafka Streams {@link KafkaClientSupplier} whose producers stamp what the application
 * writes to its output topics. Set it with
 * {@code default.client.supplier=io.gapwatch.clients.StampingClientSupplier} and put the
 * {@code gapwatch.*} settings ({@code gapwatch.producer.id}, report settings) in the Streams
 * config; Streams hands them over through {@link #configure}.
 *
 * <ul>
 *   <li>Each producer Streams creates (one per stream thread with at-least-once processing)
 *       gets its own producer id, {@code <gapwatch.producer.id>/<client.id>} (the
 *       client id without its leading {@code application.id}), since two
 *       producers sharing an id and epoch would interleave one sequence.
 *   <li>Internal topics (names ending in {@code -changelog} or {@code -repartition}, and the
 *       foreign-key join's {@code -subscription-registration-topic} and
 *       {@code -subscription-response-topic}) are written unstamped: gapwatch watches what
 *       the application publishes, not Streams' own plumbing.
 *   <li>Exactly-once processing is refused: its producers are transactional, and records of an
 *       aborted transaction never become visible, which gapwatch would count as loss.
 * </ul>
 */
public final class StampingClientSupplier implements KafkaClientSupplier, Configurable {
    private final Map<String, Object> gapwatchSettings = new HashMap<>();
    private String applicationId; // null until configured by Streams

    /** For {@code default.client.supplier}: settings arrive through {@link #configure}. */
    public StampingClientSupplier() {}

    /** For {@code new KafkaStreams(topology, props, supplier)}: the {@code gapwatch.*} settings. */
    public StampingClientSupplier(Map<String, ?> settings) {
        configure(settings);
    }

    @Override
    public void configure(Map<String, ?> configs) {
        for (Map.Entry<String, ?> entry : configs.entrySet()) {
            if (entry.getKey().startsWith(StampingConfig.PREFIX)) {
                gapwatchSettings.put(entry.getKey(), entry.getValue());
            }
        }
        Object appId = configs.get("application.id");
        if (appId != null) {
            applicationId = appId.toString();
        }
    }

    /** Whether Streams' own topic {@code topic} is left unstamped. */
    public static boolean isInternalTopic(String topic) {
        return topic.endsWith("-changelog")
                || topic.endsWith("-repartition")
                || topic.endsWith("-subscription-registration-topic")
                || topic.endsWith("-subscription-response-topic");
    }

    @Override
    public Producer<byte[], byte[]> getProducer(Map<String, Object> config) {
        if (config.get(ProducerConfig.TRANSACTIONAL_ID_CONFIG) != null) {
            throw new ConfigException("processing.guarantee", "exactly_once_v2",
                    "gapwatch's StampingClientSupplier supports at-least-once processing only: exactly-once "
                            + "producers are transactional, and records of an aborted transaction never become "
                            + "visible, which gapwatch would report as loss");
        }
        Map<String, Object> merged = new HashMap<>(gapwatchSettings);
        merged.putAll(config);
        Object base = merged.get(StampingConfig.PRODUCER_ID);
        Object clientId = config.get(ProducerConfig.CLIENT_ID_CONFIG);
        String id = base == null ? StampingConfig.defaultProducerId() : base.toString();
        if (clientId != null) {
            // Streams names producers "<application.id>-<process id>-StreamThread-<n>-producer";
            // the application is already in the base id, so only the rest is added.
            String client = clientId.toString();
            if (applicationId != null && client.startsWith(applicationId + "-")) {
                client = client.substring(applicationId.length() + 1);
            }
            id = fit(id, "/" + client);
        }
        merged.put(StampingConfig.PRODUCER_ID, id);
        return new StampingProducer<>(null, merged, new ByteArraySerializer(), new ByteArraySerializer(),
                topic -> !isInternalTopic(topic));
    }

    // base + suffix, the base shortened so the whole stays within the wire format's limit.
    private static String fit(String base, String suffix) {
        int room = Stamps.MAX_PRODUCER_ID_CHARS - suffix.codePointCount(0, suffix.length());
        if (room <= 0) {
            return suffix.substring(suffix.offsetByCodePoints(0, -room));
        }
        int baseLength = base.codePointCount(0, base.length());
        return (baseLength > room ? base.substring(0, base.offsetByCodePoints(0, room)) : base) + suffix;
    }

    @Override
    public Admin getAdmin(Map<String, Object> config) {
        return Admin.create(config);
    }

    @Override
    public Consumer<byte[], byte[]> getConsumer(Map<String, Object> config) {
        return new KafkaConsumer<>(config, new ByteArrayDeserializer(), new ByteArrayDeserializer());
    }

    @Override
    public Consumer<byte[], byte[]> getRestoreConsumer(Map<String, Object> config) {
        return getConsumer(config);
    }

    @Override
    public Consumer<byte[], byte[]> getGlobalConsumer(Map<String, Object> config) {
        return getConsumer(config);
    }
}
