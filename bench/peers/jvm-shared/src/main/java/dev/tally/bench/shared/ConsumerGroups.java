package dev.tally.bench.shared;

import java.util.List;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.RemoveMembersFromConsumerGroupOptions;
import org.apache.kafka.common.errors.GroupNotEmptyException;

/** Cleanup after a run (node-rdkafka's AdminClient cannot delete consumer groups). */
public final class ConsumerGroups {
  private ConsumerGroups() {}

  /**
   * Deletes the consumer group of a stopped run, removing its members first if it still has some
   * (a stopped Kafka Streams member stays until its session times out: Streams sends no LeaveGroup
   * on close for dynamic members). Prints a group_deleted line, or an error line and exits 1.
   */
  public static void delete(String bootstrap, String group) throws InterruptedException {
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    try (Admin admin = Admin.create(p)) {
      try {
        admin.deleteConsumerGroups(List.of(group)).all().get(30, TimeUnit.SECONDS);
      } catch (ExecutionException e) {
        if (!(e.getCause() instanceof GroupNotEmptyException)) throw e;
        admin.removeMembersFromConsumerGroup(group, new RemoveMembersFromConsumerGroupOptions()).all().get(30, TimeUnit.SECONDS);
        admin.deleteConsumerGroups(List.of(group)).all().get(30, TimeUnit.SECONDS);
      }
      Cli.line("{\"type\":\"group_deleted\",\"group\":" + Cli.quote(group) + "}");
    } catch (ExecutionException | TimeoutException e) {
      Cli.line("{\"type\":\"error\",\"message\":" + Cli.quote("could not delete group " + group + ": " + (e.getCause() != null ? e.getCause() : e)) + "}");
      System.exit(1);
    }
  }
}
