// Loaded with `node --import <this file>`: samples the process's CPU with the inspector from its
// start until it gets SIGUSR2 (the bench sends it when the run it times has ended) and writes
// <TALLY_CPU_PROFILE_DIR>/<pid>.cpuprofile. Unlike --cpu-prof, which writes only at a clean exit,
// this survives the SIGKILL the bench gives the process next. The session is in-thread, so
// Profiler.stop answers at once.
import fs from 'node:fs';
import inspector from 'node:inspector';
import path from 'node:path';
import process from 'node:process';

const dir = process.env.TALLY_CPU_PROFILE_DIR;
if (dir) {
  const session = new inspector.Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 500 });
  session.post('Profiler.start');
  process.once('SIGUSR2', () => {
    session.post('Profiler.stop', (err, res) => {
      const file = path.join(dir, `${process.pid}.cpuprofile`);
      if (!err) fs.writeFileSync(`${file}.tmp`, JSON.stringify(res.profile));
      if (!err) fs.renameSync(`${file}.tmp`, file);
    });
  });
}
