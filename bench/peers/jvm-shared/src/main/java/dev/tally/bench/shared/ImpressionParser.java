package dev.tally.bench.shared;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import java.io.IOException;
import java.time.OffsetDateTime;
import java.time.format.DateTimeParseException;

/**
 * The impression contract of README.md, as tally's server/src/impression/parse-impression.ts checks
 * it: same fields, same dead-letter reasons, same order of checks. One streaming pass with Jackson
 * (no tree); duplicate fields: the last one wins, like JSON.parse. Shared by the Kafka Streams and
 * Flink peers (each pom adds ../jvm-shared/src/main/java to its sources).
 *
 * Minimal differences from tally, none of which the bench data exercises: invalid UTF-8 is caught by
 * Jackson only inside strings it decodes, and ISO timestamps go through OffsetDateTime.parse (which
 * also accepts an offset with seconds, e.g. +01:00:30).
 */
public final class ImpressionParser {
  static final int MAX_EVENT_BYTES = 16384;
  static final long MAX_COST_MICROS = 1_000_000_000_000L;
  static final long MAX_EPOCH_MS = 8_640_000_000_000_000L;

  /** A valid impression, or the reason (and detail) it goes to the dead-letter topic. */
  public static final class Result {
    public final String reason;
    public final String detail;
    public final String impressionId;
    public final long ts;
    public final String advertiserId;
    public final String campaignId;
    public final long costMicros;

    private Result(String reason, String detail, String impressionId, long ts, String advertiserId, String campaignId, long costMicros) {
      this.reason = reason;
      this.detail = detail;
      this.impressionId = impressionId;
      this.ts = ts;
      this.advertiserId = advertiserId;
      this.campaignId = campaignId;
      this.costMicros = costMicros;
    }

    public boolean ok() {
      return reason == null;
    }

    static Result fail(String reason, String detail) {
      return new Result(reason, detail, null, 0, null, null, 0);
    }
  }

  /** What a field held: its token and, for scalars, its text or number. */
  private static final class Field {
    JsonToken token;
    String text;
    long longValue;
    boolean integral;
    double doubleValue;
  }

  private final JsonFactory factory = new JsonFactory();

  public Result parse(byte[] value) {
    if (value == null || value.length == 0) return Result.fail("bad_json", "empty value");
    if (value.length > MAX_EVENT_BYTES) return Result.fail("too_large", "value is " + value.length + " bytes, limit " + MAX_EVENT_BYTES);
    Field id = null, adv = null, cmp = null, ts = null, cost = null;
    try (JsonParser p = factory.createParser(value)) {
      JsonToken first = p.nextToken();
      if (first == null) return Result.fail("bad_json", "value is not valid JSON");
      if (first != JsonToken.START_OBJECT) {
        // Still has to be valid JSON as a whole before it is "not an object".
        if (first.isStructStart()) p.skipChildren();
        if (p.nextToken() != null) return Result.fail("bad_json", "value is not valid JSON");
        return Result.fail("not_object", "value is JSON " + kindOf(first) + ", not an object");
      }
      JsonToken t;
      while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
        String name = p.currentName();
        JsonToken v = p.nextToken();
        switch (name) {
          case "impression_id": id = read(p, v); break;
          case "advertiser_id": adv = read(p, v); break;
          case "campaign_id": cmp = read(p, v); break;
          case "ts": ts = read(p, v); break;
          case "cost_micros": cost = read(p, v); break;
          default: if (v.isStructStart()) p.skipChildren();
        }
      }
      if (t != JsonToken.END_OBJECT || p.nextToken() != null) return Result.fail("bad_json", "value is not valid JSON");
    } catch (IOException e) {
      // JsonParseException (syntax, invalid UTF-8 in a string) and friends.
      return Result.fail("bad_json", "value is not valid JSON");
    }

    Result err = checkId("impression_id", id);
    if (err != null) return err;
    err = checkId("advertiser_id", adv);
    if (err != null) return err;
    err = checkId("campaign_id", cmp);
    if (err != null) return err;

    if (ts == null) return Result.fail("missing_field", "ts is missing");
    long eventTime = eventTimeMs(ts);
    if (eventTime < 0) {
      return Result.fail("bad_timestamp", "ts must be epoch ms (integer > 0) or an ISO-8601 string with a zone (Z or ±hh:mm)");
    }

    long costMicros = 0;
    if (cost != null) {
      // null is refused rather than read as 0, as in tally.
      if (!cost.token.isNumeric() || !cost.integral || cost.longValue < 0 || cost.longValue > MAX_COST_MICROS) {
        String got = cost.token.isNumeric() ? (cost.integral ? Long.toString(cost.longValue) : Double.toString(cost.doubleValue)) : kindOf(cost.token);
        return Result.fail("bad_cost", "cost_micros must be an integer from 0 to " + MAX_COST_MICROS + ", got " + got);
      }
      costMicros = cost.longValue;
    }
    return new Result(null, null, id.text, eventTime, adv.text, cmp.text, costMicros);
  }

  private static Field read(JsonParser p, JsonToken v) throws IOException {
    Field f = new Field();
    f.token = v;
    switch (v) {
      case VALUE_STRING:
        f.text = p.getText();
        break;
      case VALUE_NUMBER_INT:
        // A BigInteger does not fit any field: mark it non-integral so it is refused.
        if (p.getNumberType() == JsonParser.NumberType.BIG_INTEGER) {
          f.integral = false;
          f.doubleValue = p.getDoubleValue();
        } else {
          f.integral = true;
          f.longValue = p.getLongValue();
        }
        break;
      case VALUE_NUMBER_FLOAT: {
        // JSON.parse makes 1.0 and 1e3 integers; so does this.
        double d = p.getDoubleValue();
        f.doubleValue = d;
        if (d == Math.rint(d) && Math.abs(d) <= 9007199254740991.0) {
          f.integral = true;
          f.longValue = (long) d;
        }
        break;
      }
      case START_OBJECT:
      case START_ARRAY:
        p.skipChildren();
        break;
      default:
        break;
    }
    return f;
  }

  private static Result checkId(String field, Field f) {
    if (f == null) return Result.fail("missing_field", field + " is missing");
    if (f.token != JsonToken.VALUE_STRING) return Result.fail("bad_type", field + " must be a string, got " + kindOf(f.token));
    if (!validId(f.text)) return Result.fail("bad_id", field + " must match ^[A-Za-z0-9._:-]{1,128}$");
    return null;
  }

  /** ^[A-Za-z0-9._:-]{1,128}$ without a regex. */
  private static boolean validId(String s) {
    int n = s.length();
    if (n < 1 || n > 128) return false;
    for (int i = 0; i < n; i++) {
      char c = s.charAt(i);
      boolean ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' || c == '-';
      if (!ok) return false;
    }
    return true;
  }

  /** Event time in epoch ms, or -1. */
  private static long eventTimeMs(Field f) {
    if (f.token.isNumeric()) return f.integral && f.longValue > 0 && f.longValue <= MAX_EPOCH_MS ? f.longValue : -1;
    if (f.token == JsonToken.VALUE_STRING) {
      try {
        long t = OffsetDateTime.parse(f.text).toInstant().toEpochMilli();
        return t > 0 && t <= MAX_EPOCH_MS ? t : -1;
      } catch (DateTimeParseException | ArithmeticException e) {
        return -1;
      }
    }
    return -1;
  }

  /** What JSON.parse would have made of the token, for detail messages (tally's kindOf). */
  private static String kindOf(JsonToken t) {
    switch (t) {
      case VALUE_NULL: return "null";
      case START_ARRAY: return "array";
      case START_OBJECT: return "object";
      case VALUE_STRING: return "string";
      case VALUE_TRUE:
      case VALUE_FALSE: return "boolean";
      default: return t.isNumeric() ? "number" : t.toString();
    }
  }
}
