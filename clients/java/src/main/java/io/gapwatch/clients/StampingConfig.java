package io.gapwatch.clients;

import java.net.InetAddress;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.config.ConfigException;

/**
 * The {@code gapwatch.*} settings of a {@link StampingProducer}, read and validated from the
 * producer's config, and the config the wrapped {@code KafkaProducer} gets: the gapwatch
 * keys removed and the delivery settings that keep sequences in order enforced.
 *
 * <p>Order in the log needs idempotence or a single request in flight; otherwise a retried
 * batch can land after a later one. So idempotence is switched on explicitly unless
 * {@code acks} is 0 or 1 (where Kafka cannot use it); without it one request in flight is
 * set, and a config asking for more in flight with retries on is refused.
 */
final class StampingConfig {
    static final String PREFIX = "gapwatch.";
    /** Stable name of this producer instance (default {@code <hostname>/<pid>}). */
    static final String PRODUCER_ID = "gapwatch.producer.id";
    /** This incarnation's number, strictly greater on every restart (default start time in ms). */
    static final String PRODUCER_EPOCH = "gapwatch.producer.epoch";
    static final String REPORTS_ENABLED = "gapwatch.reports.enabled";
    static final String REPORTS_TOPIC = "gapwatch.reports.topic";
    static final String REPORTS_INTERVAL_MS = "gapwatch.reports.interval.ms";
    static final String REPORTS_CREATE_TOPIC = "gapwatch.reports.create.topic";
    static final String REPORTS_TOPIC_PARTITIONS = "gapwatch.reports.topic.partitions";
    static final String REPORTS_TOPIC_REPLICATION = "gapwatch.reports.topic.replication.factor";
    static final String REPORTS_TIMEOUT_MS = "gapwatch.reports.timeout.ms";

    /** The control topic's default name, shared with the Python side and the monitor. */
    static final String DEFAULT_REPORT_TOPIC = "__gapwatch_producer_reports";

    final String producerId;
    final long epoch;
    final String acks; // "0", "1" or "all", as reports show it
    final boolean idempotence;
    final boolean reportsEnabled;
    final String reportTopic;
    final Duration reportInterval;
    final boolean createReportTopic;
    final int reportTopicPartitions;
    final Integer reportTopicReplication; // null: min(3, brokers)
    final Duration reportTimeout;
    /** The config for the wrapped producer: no gapwatch keys, ordering enforced. */
    final Map<String, Object> innerConfig;
    /** The user's config as given (for serializers, partitioner and the report producer). */
    final Map<String, Object> originals;

    StampingConfig(Map<String, ?> configs) {
        originals = new HashMap<>(configs);
        if (configs.get(ProducerConfig.TRANSACTIONAL_ID_CONFIG) != null) {
            throw new ConfigException(ProducerConfig.TRANSACTIONAL_ID_CONFIG,
                    configs.get(ProducerConfig.TRANSACTIONAL_ID_CONFIG),
                    "gapwatch's StampingProducer does not support transactions: records of an "
                            + "aborted transaction never become visible, which gapwatch would report as loss");
        }
        String id = text(configs, PRODUCER_ID);
        producerId = id == null ? defaultProducerId() : id;
        String problem = Stamps.producerIdProblem(producerId);
        if (problem != null) {
            throw new ConfigException(PRODUCER_ID, producerId, "gapwatch producer id " + problem);
        }
        String epochText = text(configs, PRODUCER_EPOCH);
        epoch = epochText == null ? Stamps.newEpoch() : parseEpoch(epochText);
        acks = acksLabel(configs.get(ProducerConfig.ACKS_CONFIG));
        reportsEnabled = bool(configs, REPORTS_ENABLED, true);
        String topic = text(configs, REPORTS_TOPIC);
        reportTopic = topic == null ? DEFAULT_REPORT_TOPIC : topic;
        if (reportTopic.isEmpty() || reportTopic.length() > 249) {
            throw new ConfigException(REPORTS_TOPIC, reportTopic, "must be 1..249 characters");
        }
        reportInterval = Duration.ofMillis(positive(configs, REPORTS_INTERVAL_MS, 5000));
        createReportTopic = bool(configs, REPORTS_CREATE_TOPIC, true);
        reportTopicPartitions = (int) positive(configs, REPORTS_TOPIC_PARTITIONS, 3);
        reportTopicReplication = configs.get(REPORTS_TOPIC_REPLICATION) == null
                ? null : (int) positive(configs, REPORTS_TOPIC_REPLICATION, 1);
        reportTimeout = Duration.ofMillis(positive(configs, REPORTS_TIMEOUT_MS, 10_000));

        innerConfig = new HashMap<>();
        for (Map.Entry<String, ?> entry : configs.entrySet()) {
            if (!entry.getKey().startsWith(PREFIX)) {
                innerConfig.put(entry.getKey(), entry.getValue());
            }
        }
        // The wrapper chooses every partition itself; the inner producer never calls one.
        innerConfig.remove(ProducerConfig.PARTITIONER_CLASS_CONFIG);
        idempotence = enforceOrdering(innerConfig, acks);
    }

    private static boolean enforceOrdering(Map<String, Object> config, String acks) {
        Object idempotenceSetting = config.get(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG);
        boolean idempotent;
        if (idempotenceSetting == null) {
            idempotent = "all".equals(acks);
            if (idempotent) {
                // Explicit, so Kafka refuses a conflicting setting (more than 5 requests in
                // flight, retries=0) instead of silently turning idempotence off.
                config.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
            }
        } else {
            idempotent = Boolean.parseBoolean(idempotenceSetting.toString().trim());
        }
        if (idempotent || "0".equals(acks)) {
            return idempotent; // acks=0 never retries: nothing comes back to retry on
        }
        Object retries = config.get(ProducerConfig.RETRIES_CONFIG);
        if (retries != null && Integer.parseInt(retries.toString().trim()) == 0) {
            return false;
        }
        Object inFlight = config.get(ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION);
        if (inFlight == null) {
            config.put(ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, 1);
        } else if (Integer.parseInt(inFlight.toString().trim()) > 1) {
            throw new ConfigException(ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, inFlight,
                    "gapwatch needs records in sequence order: without idempotence, more than one "
                            + "request in flight lets a retry reorder them; use enable.idempotence=true "
                            + "with acks=all, or max.in.flight.requests.per.connection=1, or retries=0");
        }
        return false;
    }

    static String acksLabel(Object acks) {
        if (acks == null) {
            return "all"; // Kafka's default since 3.0
        }
        switch (acks.toString().trim().toLowerCase(java.util.Locale.ROOT)) {
            case "all":
            case "-1":
                return "all";
            case "1":
                return "1";
            case "0":
                return "0";
            default:
                throw new ConfigException(ProducerConfig.ACKS_CONFIG, acks, "must be all, -1, 0 or 1");
        }
    }

    static String defaultProducerId() {
        String host;
        try {
            host = InetAddress.getLocalHost().getHostName();
        } catch (Exception e) {
            host = "host";
        }
        StringBuilder printable = new StringBuilder();
        host.codePoints().forEach(cp -> printable.appendCodePoint(
                Stamps.producerIdProblem(new String(Character.toChars(cp))) == null ? cp : '?'));
        String suffix = "/" + ProcessHandle.current().pid();
        int room = Stamps.MAX_PRODUCER_ID_CHARS - suffix.length();
        String trimmed = printable.length() > room ? printable.substring(0, room) : printable.toString();
        return (trimmed.isEmpty() ? "host" : trimmed) + suffix;
    }

    private static long parseEpoch(String text) {
        if (text.isEmpty() || text.length() > 20 || !text.chars().allMatch(c -> c >= '0' && c <= '9')) {
            throw new ConfigException(PRODUCER_EPOCH, text, "must be an unsigned decimal 64-bit integer");
        }
        try {
            return Long.parseUnsignedLong(text);
        } catch (NumberFormatException e) {
            throw new ConfigException(PRODUCER_EPOCH, text, "must be an unsigned decimal 64-bit integer");
        }
    }

    private static String text(Map<String, ?> configs, String key) {
        Object value = configs.get(key);
        return value == null ? null : value.toString().trim();
    }

    private static boolean bool(Map<String, ?> configs, String key, boolean fallback) {
        String value = text(configs, key);
        if (value == null) {
            return fallback;
        }
        if (!value.equalsIgnoreCase("true") && !value.equalsIgnoreCase("false")) {
            throw new ConfigException(key, value, "must be true or false");
        }
        return Boolean.parseBoolean(value);
    }

    private static long positive(Map<String, ?> configs, String key, long fallback) {
        String value = text(configs, key);
        if (value == null) {
            return fallback;
        }
        try {
            long parsed = Long.parseLong(value);
            if (parsed > 0) {
                return parsed;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new ConfigException(key, value, "must be a positive integer");
    }
}
