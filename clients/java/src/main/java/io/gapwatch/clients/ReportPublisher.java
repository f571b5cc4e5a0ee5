package io.gapwatch.clients;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Publishes one producer life's reports to the control topic: the changed streams every
 * interval, every stream once more (final) on close.
 *
 * <p>Reports go through a small producer of their own on a thread of their own, so a slow or
 * missing control topic never delays, fills or fails the application's sends. Every failure
 * is logged and counted, and the stream is reported again next time; nothing here throws
 * into the application.
 */
final class ReportPublisher implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(ReportPublisher.class);
    // The control topic's settings, as the Python side and the monitor create it.
    private static final Map<String, String> TOPIC_CONFIGS = Map.of(
            "cleanup.policy", "compact,delete", "retention.ms", Long.toString(7L * 24 * 3600 * 1000));

    private final DeliveryBook book;
    private final StampingConfig config;
    private final Map<String, Object> connection;
    private final ScheduledExecutorService scheduler;
    private final AtomicLong published = new AtomicLong();
    private final AtomicLong failed = new AtomicLong();
    private KafkaProducer<byte[], byte[]> producer; // only touched on the scheduler thread
    private boolean topicChecked;

    ReportPublisher(DeliveryBook book, StampingConfig config) {
        this.book = book;
        this.config = config;
        this.connection = connectionSettings(config.originals);
        this.scheduler = Executors.newSingleThreadScheduledExecutor(runnable -> {
            Thread thread = new Thread(runnable, "gapwatch-producer-reports-" + config.producerId);
            thread.setDaemon(true);
            return thread;
        });
    }

    /** The settings the report producer shares with the application's: where and how to connect. */
    static Map<String, Object> connectionSettings(Map<String, Object> originals) {
        Map<String, Object> out = new HashMap<>();
        for (Map.Entry<String, Object> entry : originals.entrySet()) {
            String key = entry.getKey();
            if (key.equals(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG)
                    || key.equals(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG)
                    || key.equals(CommonClientConfigs.CLIENT_DNS_LOOKUP_CONFIG)
                    || key.startsWith("ssl.")
                    || key.startsWith("sasl.")
                    || key.startsWith("reconnect.backoff")
                    || key.startsWith("retry.backoff")) {
                out.put(key, entry.getValue());
            }
        }
        Object clientId = originals.get(CommonClientConfigs.CLIENT_ID_CONFIG);
        if (clientId != null) {
            out.put(CommonClientConfigs.CLIENT_ID_CONFIG, clientId + "-gapwatch-reports");
        }
        return out;
    }

    void start() {
        long interval = config.reportInterval.toMillis();
        scheduler.execute(this::setUp);
        scheduler.scheduleWithFixedDelay(() -> publish(false), interval, interval, TimeUnit.MILLISECONDS);
    }

    /** Publish the changed streams now, on the publisher's thread; waits up to the timeout. */
    void publishNow() {
        try {
            scheduler.submit(() -> publish(false)).get(2 * config.reportTimeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (Exception e) {
            log.warn("gapwatch: publishing producer reports did not finish: {}", e.toString());
        }
    }

    long publishedCount() {
        return published.get();
    }

    long failedCount() {
        return failed.get();
    }

    /** Stop periodic reports; publish the final report of every stream if {@code isFinal}. */
    void close(boolean isFinal) {
        try {
            if (isFinal) {
                scheduler.submit(() -> publish(true)).get(3 * config.reportTimeout.toMillis(), TimeUnit.MILLISECONDS);
            }
        } catch (Exception e) {
            log.warn("gapwatch: final producer reports not published: {}", e.toString());
        } finally {
            scheduler.submit(this::closeProducer);
            scheduler.shutdown();
            try {
                if (!scheduler.awaitTermination(2 * config.reportTimeout.toMillis(), TimeUnit.MILLISECONDS)) {
                    scheduler.shutdownNow();
                }
            } catch (InterruptedException e) {
                scheduler.shutdownNow();
                Thread.currentThread().interrupt();
            }
        }
    }

    @Override
    public void close() {
        close(true);
    }

    private void closeProducer() {
        if (producer != null) {
            producer.close(config.reportTimeout);
            producer = null;
        }
    }

    private boolean setUp() {
        try {
            if (producer == null) {
                Map<String, Object> settings = new HashMap<>(connection);
                long timeout = config.reportTimeout.toMillis();
                settings.put(ProducerConfig.ACKS_CONFIG, "all");
                settings.put(ProducerConfig.LINGER_MS_CONFIG, 5);
                settings.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, (int) timeout);
                settings.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, (int) timeout + 5);
                settings.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, timeout);
                producer = new KafkaProducer<>(settings, new ByteArraySerializer(), new ByteArraySerializer());
            }
            if (config.createReportTopic && !topicChecked) {
                ensureTopic();
            }
            return true;
        } catch (RuntimeException e) {
            log.warn("gapwatch: cannot start the producer-report publisher: {}", e.toString());
            return false;
        }
    }

    private void ensureTopic() {
        long timeout = config.reportTimeout.toMillis();
        Map<String, Object> adminSettings = new HashMap<>(connection);
        adminSettings.remove(CommonClientConfigs.CLIENT_ID_CONFIG);
        adminSettings.put(CommonClientConfigs.REQUEST_TIMEOUT_MS_CONFIG, (int) timeout);
        adminSettings.put(CommonClientConfigs.DEFAULT_API_TIMEOUT_MS_CONFIG, (int) timeout);
        try (Admin admin = Admin.create(adminSettings)) {
            // Asked first: a producer without Create permission on an existing topic would
            // otherwise warn at every start.
            if (admin.listTopics().names().get(timeout, TimeUnit.MILLISECONDS).contains(config.reportTopic)) {
                topicChecked = true;
                return;
            }
            int replication = config.reportTopicReplication != null ? config.reportTopicReplication
                    : Math.max(1, Math.min(3, admin.describeCluster().nodes().get(timeout, TimeUnit.MILLISECONDS).size()));
            NewTopic topic = new NewTopic(config.reportTopic, Optional.of(config.reportTopicPartitions),
                    Optional.of((short) replication)).configs(TOPIC_CONFIGS);
            admin.createTopics(List.of(topic)).all().get(timeout, TimeUnit.MILLISECONDS);
            topicChecked = true;
        } catch (ExecutionException e) {
            topicChecked = true;
            if (!(e.getCause() instanceof TopicExistsException)) {
                log.warn("gapwatch: cannot create report topic {} ({}); relying on the broker's auto-creation",
                        config.reportTopic, e.getCause().toString());
            }
        } catch (Exception e) {
            // Not marked checked: a timeout is retried with the next report.
            log.warn("gapwatch: cannot check report topic {}: {}", config.reportTopic, e.toString());
        }
    }

    private void publish(boolean isFinal) {
        List<ProducerReport> reports = book.takeReports(isFinal);
        if (reports.isEmpty()) {
            return;
        }
        if (!setUp()) {
            countFailed(reports, "report publisher could not start");
            return;
        }
        long sentAtMs = System.currentTimeMillis();
        for (ProducerReport report : reports) {
            byte[] value = ReportCodec.encodeValue(report, config.acks, config.idempotence, sentAtMs);
            try {
                producer.send(new ProducerRecord<>(config.reportTopic, ReportCodec.encodeKey(report), value),
                        (metadata, error) -> {
                            if (error == null) {
                                published.incrementAndGet();
                            } else {
                                countFailed(List.of(report), error.toString());
                            }
                        });
            } catch (RuntimeException e) {
                countFailed(List.of(report), e.toString());
            }
        }
        // Bounded by delivery.timeout.ms: every callback has run when flush returns.
        producer.flush();
    }

    private void countFailed(List<ProducerReport> reports, String why) {
        log.warn("gapwatch: {} producer report(s) not published: {}", reports.size(), why);
        failed.addAndGet(reports.size());
        for (ProducerReport report : reports) {
            if (!report.isFinal()) {
                book.markChanged(report.topic(), report.partition());
            }
        }
    }
}
