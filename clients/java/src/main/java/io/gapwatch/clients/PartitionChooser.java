package io.gapwatch.clients;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ThreadLocalRandom;
import org.apache.kafka.clients.producer.Partitioner;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.common.Cluster;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.utils.Utils;

/**
 * Chooses the partition of a record that has none, before it is stamped (sequences count per
 * partition, and Kafka's own partitioner only runs inside {@code send}, after the headers are
 * fixed):
 *
 * <ol>
 *   <li>a configured {@code partitioner.class}, called as Kafka calls it;
 *   <li>else a keyed record (unless {@code partitioner.ignore.keys}) goes where Kafka's default
 *       key hashing puts it: murmur2 of the serialised key modulo the partition count;
 *   <li>else a sticky choice of the wrapper's own: one partition with a leader, picked at
 *       random, until about {@code batch.size} bytes went there, then another. (Kafka's
 *       accumulator picks keyless records' partitions after the fact, so it cannot be asked.)
 * </ol>
 *
 * <p>Partition lists come from the wrapped producer's metadata, cached for a second so that a
 * send does not rebuild them.
 */
final class PartitionChooser implements AutoCloseable {
    private static final long REFRESH_NANOS = 1_000_000_000L;

    private static final class TopicInfo {
        final List<PartitionInfo> partitions;
        final int[] available;
        final long fetchedAt;
        volatile Cluster cluster; // built on first use by a custom partitioner
        // sticky state of keyless records, guarded by this
        int stickyPartition = -1;
        long stickyBytes;

        TopicInfo(List<PartitionInfo> partitions, long fetchedAt) {
            this.partitions = partitions;
            this.fetchedAt = fetchedAt;
            this.available = partitions.stream().filter(p -> p.leader() != null)
                    .mapToInt(PartitionInfo::partition).toArray();
        }
    }

    private final Producer<byte[], byte[]> inner;
    private final Partitioner partitioner; // null: the default rules
    private final boolean ignoreKeys;
    private final int batchSize;
    private final Map<String, TopicInfo> topics = new ConcurrentHashMap<>();

    PartitionChooser(Producer<byte[], byte[]> inner, Partitioner partitioner, boolean ignoreKeys, int batchSize) {
        this.inner = inner;
        this.partitioner = partitioner;
        this.ignoreKeys = ignoreKeys;
        this.batchSize = Math.max(1, batchSize);
    }

    int choose(String topic, Object key, byte[] keyBytes, Object value, byte[] valueBytes, int recordBytes) {
        TopicInfo info = topicInfo(topic);
        if (partitioner != null) {
            return partitioner.partition(topic, key, keyBytes, value, valueBytes, cluster(topic, info));
        }
        if (keyBytes != null && !ignoreKeys) {
            return Utils.toPositive(Utils.murmur2(keyBytes)) % info.partitions.size();
        }
        synchronized (info) {
            if (info.stickyPartition < 0 || info.stickyBytes >= batchSize) {
                info.stickyPartition = pick(info);
                info.stickyBytes = 0;
            }
            info.stickyBytes += recordBytes;
            return info.stickyPartition;
        }
    }

    private static int pick(TopicInfo info) {
        int[] candidates = info.available.length > 0 ? info.available
                : info.partitions.stream().mapToInt(PartitionInfo::partition).toArray();
        if (candidates.length == 1) {
            return candidates[0];
        }
        // A different partition from the last one, as Kafka's sticky partitioner does.
        int choice;
        do {
            choice = candidates[ThreadLocalRandom.current().nextInt(candidates.length)];
        } while (choice == info.stickyPartition);
        return choice;
    }

    /**
     * Check a record's own partition before a sequence is taken for it, so that a partition
     * the topic does not have fails the send at once, as KafkaProducer would, without
     * leaving a failed sequence in a stream that cannot exist. Metadata is refreshed once
     * first: the topic may just have grown.
     */
    void checkExplicit(String topic, int partition) {
        if (partition < topicInfo(topic).partitions.size()) {
            return;
        }
        topics.remove(topic);
        int count = topicInfo(topic).partitions.size();
        if (partition >= count) {
            throw new KafkaException("Invalid partition given with record: " + partition
                    + " is not in the range [0..." + count + ").");
        }
    }

    private TopicInfo topicInfo(String topic) {
        TopicInfo info = topics.get(topic);
        long now = System.nanoTime();
        if (info == null || now - info.fetchedAt > REFRESH_NANOS) {
            // partitionsFor waits for metadata (up to max.block.ms) as send() would.
            List<PartitionInfo> partitions = inner.partitionsFor(topic);
            TopicInfo fresh = new TopicInfo(partitions, now);
            if (info != null && info.partitions.size() == partitions.size()) {
                synchronized (info) {
                    fresh.stickyPartition = info.stickyPartition;
                    fresh.stickyBytes = info.stickyBytes;
                }
            }
            topics.put(topic, fresh);
            info = fresh;
        }
        return info;
    }

    private static Cluster cluster(String topic, TopicInfo info) {
        Cluster cluster = info.cluster;
        if (cluster == null) {
            Map<Integer, Node> nodes = new HashMap<>();
            for (PartitionInfo partition : info.partitions) {
                for (Node node : partition.replicas()) {
                    nodes.put(node.id(), node);
                }
                if (partition.leader() != null) {
                    nodes.put(partition.leader().id(), partition.leader());
                }
            }
            cluster = new Cluster(null, new ArrayList<>(nodes.values()), info.partitions,
                    java.util.Set.of(), java.util.Set.of());
            info.cluster = cluster;
        }
        return cluster;
    }

    @Override
    public void close() {
        if (partitioner != null) {
            partitioner.close();
        }
    }
}
