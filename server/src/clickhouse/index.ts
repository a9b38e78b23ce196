export { createClickHouse, replicaClients, queryRows, serverVersion } from './client.js';
export { type ClickHouseClient, ReplicaFailover, isReplicaUnavailable } from './replica-failover.js';
export { clickHouseErrorCode } from './server-error.js';
export { migrate, migrateServers, dropDatabase, loadMigrations } from './migrate.js';
export { stringLiteral, uintLiteral, dateTimeLiteral, identifier, idLiteral } from './sql-literal.js';
