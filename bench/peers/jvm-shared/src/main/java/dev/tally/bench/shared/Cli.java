package dev.tally.bench.shared;

import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The peers' command line and stdout protocol: `--name value` (or `--name=value`) options checked
 * against a known list, and one JSON object per stdout line, which the bench runner parses.
 */
public final class Cli {
  private Cli() {}

  /** Options by name without the dashes; `--help`/`-h` maps to "help". Unknown options throw with the usage. */
  public static Map<String, String> parse(String[] argv, List<String> known, String usage) {
    Map<String, String> out = new HashMap<>();
    for (int i = 0; i < argv.length; i++) {
      String a = argv[i];
      if (a.equals("--help") || a.equals("-h")) {
        out.put("help", "");
        continue;
      }
      if (!a.startsWith("--")) throw new IllegalArgumentException("unexpected argument " + a + "\n" + usage);
      int eq = a.indexOf('=');
      if (eq > 0) {
        out.put(a.substring(2, eq), a.substring(eq + 1));
      } else {
        if (i + 1 >= argv.length) throw new IllegalArgumentException(a + " needs a value\n" + usage);
        out.put(a.substring(2), argv[++i]);
      }
    }
    for (String k : out.keySet()) {
      if (!k.equals("help") && !known.contains(k)) throw new IllegalArgumentException("unknown option --" + k + "\n" + usage);
    }
    return out;
  }

  public static String required(Map<String, String> args, String name, String usage) {
    String v = args.get(name);
    if (v == null || v.isEmpty()) throw new IllegalArgumentException("--" + name + " is required\n" + usage);
    return v;
  }

  public static long longArg(Map<String, String> args, String name, long def) {
    String v = args.get(name);
    return v == null ? def : Long.parseLong(v);
  }

  /** Sends slf4j-simple's log (Kafka's, Flink's) to stderr at `level`; call before the first logger exists. */
  public static void logToStderr(String level) {
    System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", level);
    System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");
    System.setProperty("org.slf4j.simpleLogger.showDateTime", "true");
  }

  /** One JSON line on stdout, flushed at once (the runner reacts to lines as they come). */
  public static synchronized void line(String json) {
    System.out.println(json);
    System.out.flush();
  }

  public static String quote(String s) {
    StringBuilder b = new StringBuilder(s.length() + 2).append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c == '"' || c == '\\') b.append('\\').append(c);
      else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
      else b.append(c);
    }
    return b.append('"').toString();
  }
}
