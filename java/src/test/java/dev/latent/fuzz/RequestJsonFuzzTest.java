package dev.latent.fuzz;

import com.code_intelligence.jazzer.junit.DictionaryEntries;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.latent.serve.TextRequest;
import dev.latent.serve.TextRequestJson;

/**
 * Hostile HTTP request bodies for POST /generate: each parses into a request within the limits or is
 * refused with an IllegalArgumentException that says why (the service answers 400 with it).
 */
class RequestJsonFuzzTest {
    private static final TextRequestJson.Limits LIMITS = TextRequestJson.Limits.defaults();

    @FuzzTest(maxDuration = "6s")
    @DictionaryEntries({"\"prompt\":", "\"max_tokens\":", "\"temperature\":", "\"top_k\":", "\"top_p\":", "\"seed\":",
            "\"deadline_ms\":", "1e308", "-0", "\\ud800", "9223372036854775808"})
    void parse(byte[] body) {
        TextRequest r;
        try {
            r = TextRequestJson.parse(body, LIMITS);
        } catch (IllegalArgumentException e) {
            Fuzz.requireMessage(e);
            return;
        }
        if (r.maxTokens() > LIMITS.maxTokens() || r.prompt().length() > LIMITS.maxPromptChars() || r.timeout() == null
                || r.timeout().toMillis() > LIMITS.maxDeadlineMs())
            throw new AssertionError("accepted a request past the limits: " + r);
    }
}
