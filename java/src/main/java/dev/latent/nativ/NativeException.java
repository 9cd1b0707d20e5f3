package dev.latent.nativ;

/** A native call returned a non-zero status. Carries the op, the status code and lt_last_error()'s detail. */
public final class NativeException extends RuntimeException {
    private final String op;
    private final int code;

    public NativeException(String op, int code, String detail) {
        super(op + " failed: " + codeName(code) + " (" + code + "): " + detail);
        this.op = op;
        this.code = code;
    }

    public String op() { return op; }
    public int code() { return code; }

    static String codeName(int code) {
        return switch (code) {
            case 1 -> "invalid argument";
            case 2 -> "out of memory";
            case 3 -> "unsupported";
            case 4 -> "internal error";
            default -> "status";
        };
    }
}
