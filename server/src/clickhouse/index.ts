export { createClickHouse, queryRows, serverVersion } from './client.js';
export { clickHouseErrorCode } from './server-error.js';
export { migrate, loadMigrations } from './migrate.js';
export { stringLiteral, uintLiteral, dateTimeLiteral, identifier, idLiteral } from './sql-literal.js';
