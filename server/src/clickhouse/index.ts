export { createClickHouse, queryRows, serverVersion } from './client.js';
export { migrate, loadMigrations } from './migrate.js';
export { stringLiteral, uintLiteral, dateTimeLiteral, identifier } from './sql-literal.js';
