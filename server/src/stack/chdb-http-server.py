"""
A current ClickHouse behind the part of ClickHouse's HTTP interface that tally's client uses
(@clickhouse/client: query, exec, command, insert, ping), for running tally's SQL on a release
newer than the local 18.16 server. Every query runs in the real ClickHouse engine that chdb
embeds, in one persistent chdb Session (a data directory on disk); this file only carries bytes.

Started by server/src/stack/current-clickhouse.ts with the venv's Python:
  python chdb-http-server.py --data DIR [--port N] [--memory-bytes N] [--query-seconds N]
DIR is scratch: the server removes it when it exits.
Environment: TALLY_CHDB_PASSWORD (required): the password of user `default` (HTTP Basic auth,
X-ClickHouse-User/-Key headers or user/password parameters; /ping needs none).

Output: one JSON line on stdout once listening: {"port": N, "version": "26.9.2.1"}; then
nothing but errors on stderr. It exits on SIGTERM/SIGINT and when stdin closes (the process
that started it is gone), so it never outlives its test.

What it implements of the HTTP interface:
  GET /ping, GET / (Ok.)                      liveness
  GET|POST /?query=…                           the query in the parameter; with a POST body, the
                                               body follows it (INSERT … FORMAT JSONEachRow + rows)
  POST / with the query as the body            SELECT/DDL/INSERT … VALUES; FORMAT in the query
  database=, default_format=, query_id=        as the server; any other parameter is a setting,
                                               applied for that query only
  errors                                       HTTP 500 (401: authentication), body and
                                               X-ClickHouse-Exception-Code as the server sends them
Request bodies may be gzip or deflate. Not implemented (refused with an error naming them):
query parameters (param_*) and sessions (session_id). Answers are never compressed and are sent
whole (Content-Length), not streamed.
"""
import argparse
import base64
import hmac
import json
import os
import re
import shutil
import signal
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from chdb import session as chdb_session

# Parameters the HTTP handler reads itself; every other one is a setting.
NOT_SETTINGS = {'query', 'database', 'default_format', 'query_id', 'user', 'password', 'quota_key', 'role'}
# The one exception answered with another status than 500 here (401, as the server does).
AUTH_FAILED = 516
SETTING_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
TRAILING_FORMAT = re.compile(r'\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$', re.IGNORECASE)
CODE = re.compile(r'Code: (\d+)\.')
CONTENT_TYPES = {
    'TabSeparated': 'text/tab-separated-values; charset=UTF-8',
    'TabSeparatedRaw': 'text/tab-separated-values; charset=UTF-8',
    'TabSeparatedWithNames': 'text/tab-separated-values; charset=UTF-8',
    'CSV': 'text/csv; charset=UTF-8; header=absent',
    'CSVWithNames': 'text/csv; charset=UTF-8; header=present',
}


class QueryError(Exception):
    """A ClickHouse exception as the server words it: `Code: N. DB::Exception: … (TYPE)`."""

    def __init__(self, text):
        super().__init__(text)
        self.text = text
        m = CODE.search(text)
        self.code = int(m.group(1)) if m else 1000


def sql_string(value):
    """A ClickHouse string literal."""
    return "'" + value.replace('\\', '\\\\').replace("'", "\\'") + "'"


class Engine:
    """The chdb Session. Settings and the current database are session state, so one query runs at a time."""

    def __init__(self, data_dir, memory_bytes, query_seconds):
        self.session = chdb_session.Session(f'{data_dir}?max_server_memory_usage={memory_bytes}')
        self.lock = threading.Lock()
        # Bounds for every query (a request's own settings may lower them, never lift the server's memory cap).
        self.base_settings = {'max_execution_time': str(query_seconds), 'max_memory_usage': str(memory_bytes)}
        for name, value in self.base_settings.items():
            self._run(f'SET {name} = {sql_string(value)}', 'TabSeparated')
        self.version = self._run('SELECT version()', 'TabSeparated').decode().strip()

    def _run(self, sql, fmt):
        try:
            return self.session.query(sql, fmt).bytes()
        except Exception as e:  # chdb raises ChdbError/RuntimeError with the server's exception text
            raise QueryError(str(e)) from None

    def execute(self, sql, fmt, database, settings):
        """The query's output bytes, with `settings` and `database` in force for it alone."""
        for name in settings:
            if not SETTING_NAME.match(name):
                raise QueryError(f'Code: 115. DB::Exception: Unknown setting {name}. (UNKNOWN_SETTING)')
        with self.lock:
            applied = []
            try:
                for name, value in settings.items():
                    self._run(f'SET {name} = {sql_string(value)}', 'TabSeparated')
                    applied.append(name)
                if database:
                    self._run(f'USE `{database.replace("`", "")}`', 'TabSeparated')
                return self._run(sql, fmt)
            finally:
                if database:
                    self._run('USE default', 'TabSeparated')
                for name in applied:
                    base = self.base_settings.get(name)
                    self._run(f'SET {name} = {"DEFAULT" if base is None else sql_string(base)}', 'TabSeparated')


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    # Longer than the client's idle-socket TTL (2.5 s), like the server's keep-alive timeout.
    timeout = 30
    engine: Engine = None
    password = ''

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass

    def do_GET(self):
        self.handle_request(has_body=False)

    def do_POST(self):
        self.handle_request(has_body=True)

    def read_body(self):
        if self.headers.get('Transfer-Encoding', '').lower() == 'chunked':
            parts = []
            while True:
                size = int(self.rfile.readline().split(b';')[0].strip() or b'0', 16)
                if size == 0:
                    while self.rfile.readline() not in (b'\r\n', b'\n', b''):
                        pass  # trailers
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            body = b''.join(parts)
        else:
            body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
        encoding = self.headers.get('Content-Encoding', '').lower()
        if encoding in ('gzip', 'deflate'):
            body = zlib.decompress(body, 16 + zlib.MAX_WBITS if encoding == 'gzip' else zlib.MAX_WBITS)
        elif encoding not in ('', 'identity'):
            raise QueryError(f'Code: 1. DB::Exception: Content-Encoding {encoding} is not supported by this transport. (UNSUPPORTED_METHOD)')
        return body

    def handle_request(self, has_body):
        url = urlsplit(self.path)
        try:
            body = self.read_body() if has_body else b''
            if url.path in ('/ping', '/') and not url.query and not body:
                return self.reply(200, b'Ok.\n', 'text/html; charset=UTF-8')
            params = dict(parse_qsl(url.query, keep_blank_values=True))
            self.authenticate(params)
            unsupported = [k for k in params if k.startswith('param_') or k == 'session_id']
            if unsupported:
                raise QueryError(f'Code: 1. DB::Exception: {", ".join(unsupported)}: not supported by this transport. (UNSUPPORTED_METHOD)')
            query = params.get('query', '')
            # The body follows the parameter's text (ClickHouse: "the query is the parameter, then the body").
            sql = f'{query}\n{body.decode()}' if query and body else (query or body.decode())
            if not sql.strip():
                raise QueryError('Code: 62. DB::Exception: Empty query. (SYNTAX_ERROR)')
            fmt = params.get('default_format') or 'TabSeparated'
            settings = {k: v for k, v in params.items() if k not in NOT_SETTINGS}
            out = self.engine.execute(sql, fmt, params.get('database', ''), settings)
            shown = TRAILING_FORMAT.search(query or sql[-200:])
            fmt = shown.group(1) if shown else fmt
            content_type = CONTENT_TYPES.get(fmt, 'application/json; charset=UTF-8' if fmt.startswith('JSON') else 'text/plain; charset=UTF-8')
            self.reply(200, out, content_type, {
                'X-ClickHouse-Format': fmt,
                'X-ClickHouse-Query-Id': params.get('query_id', ''),
                'X-ClickHouse-Timezone': 'UTC',
            })
        except Exception as err:  # noqa: BLE001 (every failure is answered, like the server's handler)
            e = err if isinstance(err, QueryError) else QueryError(f'Code: 1001. DB::Exception: {err!r}. (STD_EXCEPTION)')
            text = e.text.strip()
            if '(version ' not in text:
                text += f' (version {self.engine.version})'
            self.reply(401 if e.code == AUTH_FAILED else 500, f'{text}\n'.encode(), 'text/plain; charset=UTF-8',
                       {'X-ClickHouse-Exception-Code': str(e.code)})

    def authenticate(self, params):
        user, password = params.get('user', 'default'), params.get('password', '')
        auth = self.headers.get('Authorization', '')
        if auth.startswith('Basic '):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(':')
        elif self.headers.get('X-ClickHouse-User') is not None:
            user, password = self.headers.get('X-ClickHouse-User'), self.headers.get('X-ClickHouse-Key', '')
        if user != 'default' or not hmac.compare_digest(password.encode(), self.password.encode()):
            raise QueryError(f'Code: 516. DB::Exception: {user}: Authentication failed: password is incorrect, or there is no user with such name. (AUTHENTICATION_FAILED)')

    def reply(self, status, body, content_type, headers=None):
        self.send_response(status)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


def main():
    ap = argparse.ArgumentParser(description='ClickHouse HTTP interface over an embedded chdb session')
    ap.add_argument('--data', required=True, help='the session\'s data directory (scratch: removed at exit)')
    ap.add_argument('--port', type=int, default=0, help='port on 127.0.0.1 (0: any free one, printed)')
    ap.add_argument('--memory-bytes', type=int, default=2_000_000_000, help='cap on the engine\'s memory')
    ap.add_argument('--query-seconds', type=int, default=120, help='cap on one query\'s time')
    args = ap.parse_args()
    password = os.environ.get('TALLY_CHDB_PASSWORD', '')
    if password == '':
        sys.exit('TALLY_CHDB_PASSWORD must be set')

    Handler.engine = Engine(args.data, args.memory_bytes, args.query_seconds)
    Handler.password = password
    server = ThreadingHTTPServer(('127.0.0.1', args.port), Handler)
    server.daemon_threads = True

    def stop(*_):
        # The data directory is scratch: removed here too, for a parent that died before it could.
        shutil.rmtree(args.data, ignore_errors=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # stdin closes when the parent exits, however it ends.
    threading.Thread(target=lambda: (sys.stdin.buffer.read(), stop()), daemon=True).start()
    print(json.dumps({'port': server.server_address[1], 'version': Handler.engine.version}), flush=True)
    server.serve_forever()


if __name__ == '__main__':
    main()
