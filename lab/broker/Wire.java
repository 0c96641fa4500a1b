import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/** Kafka wire primitives: classic (int16/int32 lengths) and flexible (unsigned varint, tagged fields). */
final class Wire {
    private Wire() {}

    /** Reads one request body. Methods throw on truncated input (BufferUnderflowException). */
    static final class Reader {
        final ByteBuffer buf;

        Reader(ByteBuffer buf) {
            this.buf = buf;
        }

        byte int8() { return buf.get(); }
        short int16() { return buf.getShort(); }
        int int32() { return buf.getInt(); }
        long int64() { return buf.getLong(); }
        boolean bool() { return buf.get() != 0; }

        int uvarint() {
            int value = 0;
            for (int shift = 0; shift < 35; shift += 7) {
                int b = buf.get() & 0xff;
                value |= (b & 0x7f) << shift;
                if ((b & 0x80) == 0) return value;
            }
            throw new IllegalArgumentException("varint longer than 5 bytes");
        }

        String string() {
            short len = int16();
            if (len < 0) throw new IllegalArgumentException("null where a string is required");
            return text(len);
        }

        String nullableString() {
            short len = int16();
            return len < 0 ? null : text(len);
        }

        String compactString() {
            String s = compactNullableString();
            if (s == null) throw new IllegalArgumentException("null where a string is required");
            return s;
        }

        String compactNullableString() {
            int n = uvarint();
            return n == 0 ? null : text(n - 1);
        }

        String string(boolean flexible) { return flexible ? compactString() : string(); }
        String nullableString(boolean flexible) { return flexible ? compactNullableString() : nullableString(); }

        private String text(int len) {
            byte[] b = new byte[len];
            buf.get(b);
            return new String(b, StandardCharsets.UTF_8);
        }

        /** Array length; -1 for a null array. */
        int arrayLength(boolean flexible) {
            return flexible ? uvarint() - 1 : int32();
        }

        /** Nullable bytes (records); null when absent. */
        byte[] nullableBytes(boolean flexible) {
            int len = flexible ? uvarint() - 1 : int32();
            if (len < 0) return null;
            if (len > buf.remaining()) throw new IllegalArgumentException("bytes field longer than the request");
            byte[] b = new byte[len];
            buf.get(b);
            return b;
        }

        void taggedFields(boolean flexible) {
            if (!flexible) return;
            int n = uvarint();
            for (int i = 0; i < n; i++) {
                uvarint(); // tag
                int size = uvarint();
                buf.position(buf.position() + size);
            }
        }
    }

    /** Builds one response. */
    static final class Writer {
        final ByteArrayOutputStream out = new ByteArrayOutputStream(256);

        Writer int8(int v) { out.write(v); return this; }
        Writer bool(boolean v) { return int8(v ? 1 : 0); }
        Writer int16(int v) { out.write(v >>> 8); out.write(v); return this; }
        Writer int32(int v) { int16(v >>> 16); return int16(v); }
        Writer int64(long v) { int32((int) (v >>> 32)); return int32((int) v); }

        Writer uvarint(int v) {
            while ((v & ~0x7f) != 0) {
                out.write((v & 0x7f) | 0x80);
                v >>>= 7;
            }
            out.write(v);
            return this;
        }

        Writer string(String s, boolean flexible) {
            if (s == null) return flexible ? uvarint(0) : int16(-1);
            byte[] b = s.getBytes(StandardCharsets.UTF_8);
            if (flexible) uvarint(b.length + 1); else int16(b.length);
            out.write(b, 0, b.length);
            return this;
        }

        Writer arrayLength(int n, boolean flexible) {
            return flexible ? uvarint(n + 1) : int32(n);
        }

        Writer int32Array(int[] values, boolean flexible) {
            arrayLength(values.length, flexible);
            for (int v : values) int32(v);
            return this;
        }

        Writer taggedFields(boolean flexible) {
            return flexible ? uvarint(0) : this;
        }

        byte[] toByteArray() { return out.toByteArray(); }
    }
}
