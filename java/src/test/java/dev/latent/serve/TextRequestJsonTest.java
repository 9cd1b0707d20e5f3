package dev.latent.serve;

import dev.latent.io.JsonReader;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

class TextRequestJsonTest {
    static final TextRequestJson.Limits LIM = new TextRequestJson.Limits(10, 100, 5000, 16, 1000);

    static String refused(String body) {
        return assertThrows(IllegalArgumentException.class, () -> TextRequestJson.parse(body.getBytes(StandardCharsets.UTF_8), LIM)).getMessage();
    }

    @Test
    void defaultsAndAFullRequest() {
        TextRequest d = TextRequestJson.parse("{\"prompt\":\"ab\"}", LIM);
        assertEquals(new TextRequest("ab", 16, 0.8, 0, 1.0, 0, Duration.ofMillis(1000)), d);
        TextRequest f = TextRequestJson.parse("{\"prompt\":\"x\",\"max_tokens\":100,\"temperature\":0,\"top_k\":5,\"top_p\":0.5,\"seed\":-3,\"deadline_ms\":5000}", LIM);
        assertEquals(new TextRequest("x", 100, 0, 5, 0.5, -3, Duration.ofMillis(5000)), f);
    }

    @Test
    void everyProblemNamesItsField() {
        assertTrue(refused("{\"max_tokens\":3}").contains("\"prompt\" must be a string"));
        assertTrue(refused("{\"prompt\":\"12345678901\"}").contains("limit is 10"));
        assertTrue(refused("{\"prompt\":\"a\",\"max_tokens\":101}").contains("\"max_tokens\" must be in [0, 100]"));
        assertTrue(refused("{\"prompt\":\"a\",\"max_tokens\":3.0}").contains("\"max_tokens\" must be an integer"));
        assertTrue(refused("{\"prompt\":\"a\",\"top_p\":0}").contains("\"top_p\""));
        assertTrue(refused("{\"prompt\":\"a\",\"temperature\":\"hot\"}").contains("\"temperature\" must be a number"));
        assertTrue(refused("{\"prompt\":\"a\",\"deadline_ms\":0}").contains("\"deadline_ms\""));
        assertTrue(refused("{\"prompt\":\"a\",\"Seed\":1}").contains("unknown field \"Seed\""));
        assertTrue(refused("[1]").contains("expected an object"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> TextRequestJson.parse(new byte[] {'{', (byte) 0xc3, '}'}, LIM)).getMessage().contains("UTF-8"));
    }

    @Test
    void resultsAndErrorsAreJson() {
        Map<String, Object> r = JsonReader.parseObject(TextRequestJson.result(new TextResult("a\"b\n", new int[] {1, 2}, 3, Outcome.DEADLINE, 1_234_567)));
        assertEquals(Map.of("text", "a\"b\n", "tokens", 2L, "prompt_tokens", 3L, "outcome", "deadline", "ms", 1.235), r);
        assertEquals(Map.of("error", "x", "message", "y \"z\""), JsonReader.parseObject(TextRequestJson.error("x", "y \"z\"")));
    }
}
