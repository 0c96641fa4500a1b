import java.io.BufferedWriter;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A single-node broker that speaks enough of the Kafka protocol for real producers: ApiVersions
 * (v0-v3), Metadata (v0-v9), InitProducerId (v0-v4) and Produce (v3-v9). Threads are organised as
 * in Kafka: one network thread per connection reads a request, queues it, and stays muted until the
 * response is sent; a pool of {@code data-plane-kafka-request-handler-N} threads takes requests from
 * the shared queue and appends each partition's batches under the partition's monitor.
 *
 * <p>Every request's timeline (arrival, handler pickup, monitor wait, write, response) goes to
 * {@code --request-log} (every half second, and the rest with the handler threads at shutdown):
 * the lab's ground truth, never part of a bundle.
 */
public final class Broker {
    static final short PRODUCE = 0, FETCH = 1, METADATA = 3, FIND_COORDINATOR = 10, API_VERSIONS = 18,
            INIT_PRODUCER_ID = 22;
    /** api key, min version, max version, first flexible version. */
    static final int[][] APIS = {
        {PRODUCE, 3, 9, 9},
        {METADATA, 0, 9, 9},
        {API_VERSIONS, 0, 3, 3},
        {INIT_PRODUCER_ID, 0, 4, 2},
    };
    /**
     * Advertised but not served (the connection is closed): librdkafka enables the v2 record format
     * only when Fetch v4 is advertised, zstd only with Fetch v10, and LZ4 only with FindCoordinator.
     */
    static final int[][] ADVERTISED_ONLY = {
        {FETCH, 4, 11, 12},
        {FIND_COORDINATOR, 0, 0, 3},
    };

    static final class Options {
        String host = "127.0.0.1";
        int port = 9092;
        int brokerId = 0;
        Path logDir = Paths.get("kafka-logs");
        int handlers = 8;
        int partitions = 8;
        List<String> topics = new ArrayList<>();
        int leaderEpoch = 0;
        long segmentBytes = 1L << 30;
        long checkpointMs = 5000;
        long flushMs = 0;
        int queuedMaxRequests = 500;
        Path requestLog;
    }

    static final class Topic {
        final String name;
        final UUID id;
        final PartitionLog[] partitions;

        Topic(String name, UUID id, PartitionLog[] partitions) {
            this.name = name;
            this.id = id;
            this.partitions = partitions;
        }
    }

    /** One append of one partition inside a produce request. */
    static final class PartitionAppend {
        String topic;
        int partition;
        PartitionLog.AppendResult result;
    }

    static final class Request {
        final Connection conn;
        final ByteBuffer body;
        short apiKey;
        short apiVersion;
        int correlationId;
        String clientId;
        int requestBytes;
        long arrivalNs;
        long dequeueNs;
        long doneNs;
        long sentNs;
        long handlerTid;
        short acks = -2;
        byte[] response;
        boolean close;
        final List<PartitionAppend> appends = new ArrayList<>(2);
        final CountDownLatch done = new CountDownLatch(1);

        Request(Connection conn, ByteBuffer body) {
            this.conn = conn;
            this.body = body;
        }
    }

    final Options opt;
    final Map<String, Topic> topics = new ConcurrentHashMap<>();
    final BlockingQueue<Request> requestQueue;
    final ConcurrentLinkedQueue<Request> finished = new ConcurrentLinkedQueue<>();
    final Map<Long, String> handlerTids = new ConcurrentHashMap<>();
    final AtomicLong nextProducerId = new AtomicLong(1000);
    final AtomicInteger connections = new AtomicInteger();
    final long anchorNanos;
    final Instant anchorWall;
    volatile boolean running = true;
    ServerSocket server;

    Broker(Options opt) {
        this.opt = opt;
        this.requestQueue = new ArrayBlockingQueue<>(opt.queuedMaxRequests);
        long n1 = System.nanoTime();
        Instant wall = Instant.now();
        long n2 = System.nanoTime();
        this.anchorNanos = n1 + (n2 - n1) / 2;
        this.anchorWall = wall;
    }

    static String base64Uuid(UUID id) {
        ByteBuffer b = ByteBuffer.allocate(16).putLong(id.getMostSignificantBits()).putLong(id.getLeastSignificantBits());
        return Base64.getUrlEncoder().withoutPadding().encodeToString(b.array());
    }

    Topic topic(String name, boolean create) {
        if (!create) return topics.get(name);
        return topics.computeIfAbsent(name, n -> {
            try {
                UUID id = UUID.nameUUIDFromBytes(n.getBytes(StandardCharsets.UTF_8));
                PartitionLog[] logs = new PartitionLog[opt.partitions];
                for (int p = 0; p < logs.length; p++) {
                    logs[p] = new PartitionLog(opt.logDir, n, p, opt.leaderEpoch, opt.segmentBytes, id);
                }
                return new Topic(n, id, logs);
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
    }

    static int flexibleFrom(int apiKey) {
        for (int[] a : APIS) if (a[0] == apiKey) return a[3];
        return Integer.MAX_VALUE;
    }

    static boolean supported(int apiKey, int version) {
        for (int[] a : APIS) if (a[0] == apiKey) return version >= a[1] && version <= a[2];
        return false;
    }

    // ---------------------------------------------------------------- network threads

    final class Connection implements Runnable {
        final Socket socket;
        final int id;

        Connection(Socket socket, int id) {
            this.socket = socket;
            this.id = id;
        }

        int remotePort() {
            return socket.getPort();
        }

        @Override
        public void run() {
            try (Socket s = socket) {
                s.setTcpNoDelay(true);
                DataInputStream in = new DataInputStream(new java.io.BufferedInputStream(s.getInputStream(), 65536));
                DataOutputStream out = new DataOutputStream(new java.io.BufferedOutputStream(s.getOutputStream(), 65536));
                while (running) {
                    int size;
                    try {
                        size = in.readInt();
                    } catch (EOFException eof) {
                        return;
                    }
                    if (size < 8 || size > 104857600) return; // socket.request.max.bytes
                    byte[] bytes = new byte[size];
                    in.readFully(bytes);
                    Request req = new Request(this, ByteBuffer.wrap(bytes));
                    req.arrivalNs = System.nanoTime();
                    req.requestBytes = size + 4;
                    requestQueue.put(req);
                    req.done.await(); // muted until the response is ready
                    if (req.close) return;
                    if (req.response != null) {
                        out.writeInt(req.response.length);
                        out.write(req.response);
                        out.flush();
                    }
                    req.sentNs = System.nanoTime();
                    finished.add(req);
                }
            } catch (IOException | InterruptedException e) {
                // connection closed
            }
        }
    }

    void accept() {
        while (running) {
            try {
                Socket s = server.accept();
                int n = connections.getAndIncrement();
                Thread t = new Thread(new Connection(s, n),
                        "data-plane-kafka-network-thread-" + opt.brokerId + "-ListenerName(PLAINTEXT)-PLAINTEXT-" + n);
                t.setDaemon(true);
                t.start();
            } catch (IOException e) {
                if (running) System.err.println("accept failed: " + e);
            }
        }
    }

    // ---------------------------------------------------------------- request handlers

    static long linuxTid() {
        try {
            String link = Files.readSymbolicLink(Paths.get("/proc/thread-self")).toString();
            return Long.parseLong(link.substring(link.lastIndexOf('/') + 1));
        } catch (IOException | RuntimeException e) {
            return -1;
        }
    }

    void handlerLoop() {
        long tid = linuxTid();
        handlerTids.put(tid, Thread.currentThread().getName());
        while (true) {
            Request req;
            try {
                req = requestQueue.take();
            } catch (InterruptedException e) {
                return;
            }
            req.dequeueNs = System.nanoTime();
            req.handlerTid = tid;
            try {
                handle(req);
            } catch (RuntimeException | IOException e) {
                System.err.println("request from port " + req.conn.remotePort() + " failed: " + e);
                req.close = true;
            }
            req.doneNs = System.nanoTime();
            req.done.countDown();
        }
    }

    void handle(Request req) throws IOException {
        Wire.Reader in = new Wire.Reader(req.body);
        req.apiKey = in.int16();
        req.apiVersion = in.int16();
        req.correlationId = in.int32();
        req.clientId = in.nullableString();
        boolean flexible = req.apiVersion >= flexibleFrom(req.apiKey);
        in.taggedFields(flexible);
        if (req.apiKey == API_VERSIONS) {
            req.response = apiVersions(req, in);
            return;
        }
        if (!supported(req.apiKey, req.apiVersion)) {
            System.err.println("unsupported api " + req.apiKey + " v" + req.apiVersion + ": closing");
            req.close = true;
            return;
        }
        Wire.Writer out = new Wire.Writer();
        out.int32(req.correlationId).taggedFields(flexible);
        switch (req.apiKey) {
            case PRODUCE -> {
                if (!produce(req, in, out, flexible)) return; // acks=0: no response
            }
            case METADATA -> metadata(req, in, out, flexible);
            case INIT_PRODUCER_ID -> initProducerId(req, in, out, flexible);
            default -> throw new IllegalStateException("unreachable");
        }
        req.response = out.toByteArray();
    }

    byte[] apiVersions(Request req, Wire.Reader in) {
        boolean ok = req.apiVersion >= 0 && req.apiVersion <= 3;
        int v = ok ? req.apiVersion : 0;
        boolean flexible = v >= 3;
        Wire.Writer out = new Wire.Writer();
        out.int32(req.correlationId); // ApiVersions responses always use header v0
        out.int16(ok ? 0 : 35); // UNSUPPORTED_VERSION
        out.arrayLength(APIS.length + ADVERTISED_ONLY.length, flexible);
        for (int[] a : APIS) {
            out.int16(a[0]).int16(a[1]).int16(a[2]).taggedFields(flexible);
        }
        for (int[] a : ADVERTISED_ONLY) {
            out.int16(a[0]).int16(a[1]).int16(a[2]).taggedFields(flexible);
        }
        if (v >= 1) out.int32(0); // throttle_time_ms
        out.taggedFields(flexible);
        return out.toByteArray();
    }

    void metadata(Request req, Wire.Reader in, Wire.Writer out, boolean flexible) {
        int v = req.apiVersion;
        List<String> wanted = null;
        int n = in.arrayLength(flexible);
        if (n >= 0) {
            wanted = new ArrayList<>(n);
            for (int i = 0; i < n; i++) {
                wanted.add(in.string(flexible));
                in.taggedFields(flexible);
            }
        }
        boolean autoCreate = v < 4 || in.bool();
        if (v == 0 && wanted != null && wanted.isEmpty()) wanted = null; // v0: empty list means all
        Map<String, Topic> answer = new LinkedHashMap<>();
        List<String> unknown = new ArrayList<>();
        if (wanted == null) {
            answer.putAll(topics);
        } else {
            for (String name : wanted) {
                Topic t = topic(name, autoCreate);
                if (t == null) unknown.add(name); else answer.put(name, t);
            }
        }
        if (v >= 3) out.int32(0); // throttle_time_ms
        out.arrayLength(1, flexible);
        out.int32(opt.brokerId).string(opt.host, flexible).int32(server.getLocalPort());
        if (v >= 1) out.string(null, flexible); // rack
        out.taggedFields(flexible);
        if (v >= 2) out.string("kforensics-lab", flexible); // cluster_id
        if (v >= 1) out.int32(opt.brokerId); // controller_id
        out.arrayLength(answer.size() + unknown.size(), flexible);
        int[] replicas = {opt.brokerId};
        for (Topic t : answer.values()) {
            out.int16(0).string(t.name, flexible);
            if (v >= 1) out.bool(false); // is_internal
            out.arrayLength(t.partitions.length, flexible);
            for (PartitionLog p : t.partitions) {
                out.int16(0).int32(p.partition).int32(opt.brokerId);
                if (v >= 7) out.int32(p.leaderEpoch);
                out.int32Array(replicas, flexible).int32Array(replicas, flexible);
                if (v >= 5) out.int32Array(new int[0], flexible);
                out.taggedFields(flexible);
            }
            if (v >= 8) out.int32(Integer.MIN_VALUE); // topic_authorized_operations
            out.taggedFields(flexible);
        }
        for (String name : unknown) {
            out.int16(3).string(name, flexible); // UNKNOWN_TOPIC_OR_PARTITION
            if (v >= 1) out.bool(false);
            out.arrayLength(0, flexible);
            if (v >= 8) out.int32(Integer.MIN_VALUE);
            out.taggedFields(flexible);
        }
        if (v >= 8) out.int32(Integer.MIN_VALUE); // cluster_authorized_operations
        out.taggedFields(flexible);
    }

    void initProducerId(Request req, Wire.Reader in, Wire.Writer out, boolean flexible) {
        String transactionalId = in.nullableString(flexible);
        in.int32(); // transaction_timeout_ms
        short errorCode = 0;
        if (transactionalId != null) errorCode = 15; // COORDINATOR_NOT_AVAILABLE: no transactions here
        out.int32(0).int16(errorCode);
        out.int64(errorCode == 0 ? nextProducerId.getAndIncrement() : -1).int16(errorCode == 0 ? 0 : -1);
        out.taggedFields(flexible);
    }

    /** Returns false when the request wants no response (acks=0). */
    boolean produce(Request req, Wire.Reader in, Wire.Writer out, boolean flexible) throws IOException {
        int v = req.apiVersion;
        in.nullableString(flexible); // transactional_id
        req.acks = in.int16();
        in.int32(); // timeout_ms
        int topicCount = in.arrayLength(flexible);
        out.arrayLength(Math.max(topicCount, 0), flexible);
        for (int i = 0; i < topicCount; i++) {
            String name = in.string(flexible);
            Topic t = topic(name, false); // produce never creates a topic
            int partitionCount = in.arrayLength(flexible);
            out.string(name, flexible).arrayLength(Math.max(partitionCount, 0), flexible);
            for (int j = 0; j < partitionCount; j++) {
                int index = in.int32();
                byte[] records = in.nullableBytes(flexible);
                in.taggedFields(flexible);
                PartitionLog.AppendResult r;
                if (t == null || index < 0 || index >= t.partitions.length) {
                    r = new PartitionLog.AppendResult();
                    r.errorCode = 3; // UNKNOWN_TOPIC_OR_PARTITION
                } else if (records == null) {
                    r = new PartitionLog.AppendResult();
                    r.errorCode = 2; // CORRUPT_MESSAGE
                } else {
                    r = t.partitions[index].append(records);
                }
                PartitionAppend a = new PartitionAppend();
                a.topic = name;
                a.partition = index;
                a.result = r;
                req.appends.add(a);
                out.int32(index).int16(r.errorCode).int64(r.baseOffset);
                out.int64(-1); // log_append_time_ms (v2+)
                if (v >= 5) out.int64(0); // log_start_offset
                if (v >= 8) out.arrayLength(0, flexible).string(null, flexible); // record_errors, error_message
                out.taggedFields(flexible);
            }
            in.taggedFields(flexible);
            out.taggedFields(flexible);
        }
        in.taggedFields(flexible);
        out.int32(0); // throttle_time_ms
        out.taggedFields(flexible);
        return req.acks != 0;
    }

    // ---------------------------------------------------------------- background tasks

    /** Kafka's scheduler: checkpoint files written to a temp file, fsync'd, renamed. */
    void checkpointLoop() {
        Path target = opt.logDir.resolve("replication-offset-checkpoint");
        Path tmp = opt.logDir.resolve("replication-offset-checkpoint.tmp");
        while (running) {
            try {
                Thread.sleep(opt.checkpointMs);
                StringBuilder sb = new StringBuilder("0\n");
                List<String> lines = new ArrayList<>();
                for (Topic t : topics.values()) {
                    for (PartitionLog p : t.partitions) lines.add(t.name + " " + p.partition + " " + p.logEndOffset());
                }
                sb.append(lines.size()).append('\n');
                for (String l : lines) sb.append(l).append('\n');
                try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(tmp,
                        java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.WRITE,
                        java.nio.file.StandardOpenOption.TRUNCATE_EXISTING)) {
                    ch.write(ByteBuffer.wrap(sb.toString().getBytes(StandardCharsets.UTF_8)));
                    ch.force(true);
                }
                Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            } catch (InterruptedException e) {
                return;
            } catch (IOException e) {
                System.err.println("checkpoint failed: " + e);
            }
        }
    }

    void flushLoop() {
        while (running) {
            try {
                Thread.sleep(opt.flushMs);
                for (Topic t : topics.values()) for (PartitionLog p : t.partitions) p.flush();
            } catch (InterruptedException e) {
                return;
            } catch (IOException e) {
                System.err.println("flush failed: " + e);
            }
        }
    }

    // ---------------------------------------------------------------- request log

    private BufferedWriter requestLogWriter;
    private Thread requestLogThread;

    /** Opens the request log and writes its header; a thread then appends finished requests. */
    void openRequestLog() throws IOException {
        if (opt.requestLog == null) return;
        BufferedWriter w = Files.newBufferedWriter(opt.requestLog, StandardCharsets.UTF_8);
        w.write("# kforensics lab broker request log v1\n");
        w.write("# anchor nanotime=" + anchorNanos + " wall=" + anchorWall + "\n");
        w.write("# columns\trequest\tclient_port\tcorrelation_id\tapi_key\tapi_version\tclient_id\tacks"
                + "\trequest_bytes\tresponse_bytes\tarrival_ns\tdequeue_ns\thandler_tid\tdone_ns\tsent_ns\n");
        w.write("# columns\tappend\tclient_port\tcorrelation_id\ttopic\tpartition\terror_code\tbase_offset"
                + "\tsegment\tfile_position\tbytes\tlock_requested_ns\tlock_acquired_ns\twrite_start_ns"
                + "\twrite_end_ns\n");
        requestLogWriter = w;
        requestLogThread = new Thread(() -> {
            while (running) {
                try {
                    Thread.sleep(500);
                    drainRequestLog();
                } catch (InterruptedException e) {
                    return;
                } catch (IOException e) {
                    System.err.println("request log: " + e);
                }
            }
        }, "kafka-request-log");
        requestLogThread.setDaemon(true);
        requestLogThread.start();
    }

    /** Writes the requests finished so far (memory stays bounded on long runs). */
    synchronized void drainRequestLog() throws IOException {
        BufferedWriter w = requestLogWriter;
        if (w == null) return;
        Request r;
        while ((r = finished.poll()) != null) {
            int port = r.conn.remotePort();
            w.write("request\t" + port + "\t" + r.correlationId + "\t" + r.apiKey + "\t" + r.apiVersion + "\t"
                    + r.clientId + "\t" + r.acks + "\t" + r.requestBytes + "\t"
                    + (r.response == null ? 0 : r.response.length + 4) + "\t" + r.arrivalNs + "\t"
                    + r.dequeueNs + "\t" + r.handlerTid + "\t" + r.doneNs + "\t" + r.sentNs + "\n");
            for (PartitionAppend a : r.appends) {
                PartitionLog.AppendResult x = a.result;
                w.write("append\t" + port + "\t" + r.correlationId + "\t" + a.topic + "\t" + a.partition + "\t"
                        + x.errorCode + "\t" + x.baseOffset + "\t" + x.segment + "\t" + x.filePosition + "\t"
                        + x.bytes + "\t" + x.lockRequestedNs + "\t" + x.lockAcquiredNs + "\t" + x.writeStartNs
                        + "\t" + x.writeEndNs + "\n");
            }
        }
        w.flush();
    }

    synchronized void closeRequestLog() throws IOException {
        if (requestLogWriter == null) return;
        drainRequestLog();
        for (Map.Entry<Long, String> h : handlerTids.entrySet()) {
            requestLogWriter.write("# handler tid=" + h.getKey() + " name=" + h.getValue() + "\n");
        }
        requestLogWriter.write("# end\n");
        requestLogWriter.close();
        requestLogWriter = null;
    }

    void shutdown() {
        running = false;
        try {
            server.close();
        } catch (IOException e) {
            // already closed
        }
        try {
            if (requestLogThread != null) requestLogThread.interrupt();
            closeRequestLog();
            for (Topic t : topics.values()) for (PartitionLog p : t.partitions) p.close();
        } catch (IOException e) {
            System.err.println("shutdown: " + e);
        }
    }

    void start() throws IOException, InterruptedException {
        Files.createDirectories(opt.logDir);
        for (String t : opt.topics) topic(t, true);
        openRequestLog();
        server = new ServerSocket();
        server.setReuseAddress(true);
        server.bind(new InetSocketAddress(InetAddress.getByName(opt.host), opt.port), 128);
        for (int i = 0; i < opt.handlers; i++) {
            Thread h = new Thread(this::handlerLoop, "data-plane-kafka-request-handler-" + i);
            h.setDaemon(true);
            h.start();
        }
        if (opt.checkpointMs > 0) daemon(this::checkpointLoop, "kafka-scheduler-0");
        if (opt.flushMs > 0) daemon(this::flushLoop, "kafka-scheduler-1");
        Runtime.getRuntime().addShutdownHook(new Thread(this::shutdown, "kafka-shutdown-hook"));
        Thread acceptor = new Thread(this::accept,
                "data-plane-kafka-socket-acceptor-ListenerName(PLAINTEXT)-PLAINTEXT-" + server.getLocalPort());
        acceptor.start();
        System.out.println("LISTENING " + server.getLocalPort() + " pid=" + ProcessHandle.current().pid());
        System.out.flush();
        acceptor.join();
    }

    static void daemon(Runnable r, String name) {
        Thread t = new Thread(r, name);
        t.setDaemon(true);
        t.start();
    }

    static Options parse(String[] args) {
        Options o = new Options();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (i + 1 >= args.length) throw new IllegalArgumentException("missing value for " + a);
            String v = args[++i];
            switch (a) {
                case "--host" -> o.host = v;
                case "--port" -> o.port = Integer.parseInt(v);
                case "--broker-id" -> o.brokerId = Integer.parseInt(v);
                case "--log-dir" -> o.logDir = Paths.get(v);
                case "--handlers" -> o.handlers = Integer.parseInt(v);
                case "--partitions" -> o.partitions = Integer.parseInt(v);
                case "--topic" -> o.topics.add(v);
                case "--leader-epoch" -> o.leaderEpoch = Integer.parseInt(v);
                case "--segment-bytes" -> o.segmentBytes = Long.parseLong(v);
                case "--checkpoint-ms" -> o.checkpointMs = Long.parseLong(v);
                case "--flush-ms" -> o.flushMs = Long.parseLong(v);
                case "--queued-max-requests" -> o.queuedMaxRequests = Integer.parseInt(v);
                case "--request-log" -> o.requestLog = Paths.get(v);
                default -> throw new IllegalArgumentException("unknown option " + a);
            }
        }
        return o;
    }

    public static void main(String[] args) throws Exception {
        Options o;
        try {
            o = parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("usage: Broker [--port P] [--log-dir D] [--handlers N] [--partitions N] [--topic T]..."
                    + " [--leader-epoch E] [--segment-bytes B] [--checkpoint-ms MS] [--flush-ms MS]"
                    + " [--request-log FILE]\n" + e.getMessage());
            System.exit(2);
            return;
        }
        new Broker(o).start();
    }
}
