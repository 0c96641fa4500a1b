import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.UUID;
import java.util.zip.CRC32C;

/**
 * One partition's log: a directory {@code <topic>-<partition>} of segments named by their base offset.
 * Appends happen under this object's monitor, as Kafka's log append does under the log's lock: assign
 * the base offset, stamp the partition leader epoch (both outside the batch CRC), then
 * {@code FileChannel.write} the producer's batch bytes at the end of the active segment.
 */
final class PartitionLog {
    static final int MAGIC_OFFSET = 16;
    static final int CRC_OFFSET = 17;
    static final int ATTRIBUTES_OFFSET = 21;
    static final int LAST_OFFSET_DELTA_OFFSET = 23;
    static final int HEADER_BYTES = 61;

    /** Why a produce was refused (Kafka error code) or where the batch went. */
    static final class AppendResult {
        short errorCode;
        long baseOffset = -1;
        long filePosition = -1;
        String segment = "";
        long lockRequestedNs;
        long lockAcquiredNs;
        long writeStartNs;
        long writeEndNs;
        int bytes;
    }

    final String topic;
    final int partition;
    final int leaderEpoch;
    final Path dir;
    private final long segmentBytes;
    private long nextOffset;
    private FileChannel active;
    private String activeName;

    PartitionLog(Path logDir, String topic, int partition, int leaderEpoch, long segmentBytes, UUID topicId)
            throws IOException {
        this.topic = topic;
        this.partition = partition;
        this.leaderEpoch = leaderEpoch;
        this.segmentBytes = segmentBytes;
        this.dir = logDir.resolve(topic + "-" + partition);
        Files.createDirectories(dir);
        String meta = "version: 0\ntopic_id: " + Broker.base64Uuid(topicId) + "\n";
        Files.write(dir.resolve("partition.metadata"), meta.getBytes(StandardCharsets.UTF_8));
        roll();
    }

    private void roll() throws IOException {
        if (active != null) {
            active.force(true); // Kafka flushes the old segment on roll
            active.close();
        }
        activeName = String.format("%020d.log", nextOffset);
        active = FileChannel.open(dir.resolve(activeName), StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.READ);
        active.position(active.size());
    }

    /** Check every batch in {@code records}; null when valid, else the reason. */
    static String validate(ByteBuffer records) {
        int pos = 0;
        int limit = records.limit();
        if (limit == 0) return "empty records";
        while (pos < limit) {
            if (limit - pos < HEADER_BYTES) return "truncated batch header at " + pos;
            int length = records.getInt(pos + 8);
            int size = 12 + length;
            if (length < HEADER_BYTES - 12 || size > limit - pos) return "bad batch length " + length + " at " + pos;
            if (records.get(pos + MAGIC_OFFSET) != 2) return "magic " + records.get(pos + MAGIC_OFFSET) + " at " + pos;
            CRC32C crc = new CRC32C();
            ByteBuffer body = records.duplicate();
            body.position(pos + ATTRIBUTES_OFFSET).limit(pos + size);
            crc.update(body);
            long stored = records.getInt(pos + CRC_OFFSET) & 0xffffffffL;
            if (crc.getValue() != stored) return "CRC mismatch at " + pos;
            pos += size;
        }
        return null;
    }

    /** Append the producer's batches; called by a request handler thread. */
    AppendResult append(byte[] recordBytes) throws IOException {
        AppendResult r = new AppendResult();
        ByteBuffer records = ByteBuffer.wrap(recordBytes);
        String invalid = validate(records);
        if (invalid != null) {
            System.err.println("refused batch for " + topic + "-" + partition + ": " + invalid);
            r.errorCode = 2; // CORRUPT_MESSAGE
            return r;
        }
        r.bytes = recordBytes.length;
        r.lockRequestedNs = System.nanoTime();
        synchronized (this) {
            r.lockAcquiredNs = System.nanoTime();
            if (active.position() > 0 && active.position() + recordBytes.length > segmentBytes) roll();
            r.baseOffset = nextOffset;
            int pos = 0;
            while (pos < recordBytes.length) {
                int size = 12 + records.getInt(pos + 8);
                records.putLong(pos, nextOffset);
                records.putInt(pos + 12, leaderEpoch);
                nextOffset += records.getInt(pos + LAST_OFFSET_DELTA_OFFSET) + 1L;
                pos += size;
            }
            r.segment = activeName;
            r.filePosition = active.position();
            r.writeStartNs = System.nanoTime();
            while (records.hasRemaining()) active.write(records);
            r.writeEndNs = System.nanoTime();
        }
        return r;
    }

    /** Flush the active segment outside the append monitor, as Kafka's scheduled flush does. */
    void flush() throws IOException {
        FileChannel ch;
        synchronized (this) {
            ch = active;
        }
        try {
            ch.force(true);
        } catch (java.nio.channels.ClosedChannelException e) {
            // rolled meanwhile: the roll flushed it
        }
    }

    synchronized long logEndOffset() {
        return nextOffset;
    }

    synchronized void close() throws IOException {
        active.close();
    }
}
