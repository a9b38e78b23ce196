// Root hooks for every mocha run. Integration tests start the local stack on first use
// (test/kit/harness.ts); this stops what they started once the run ends.
import { stopStartedStack } from './kit/harness.js';

export const mochaHooks = {
  async afterAll(this: Mocha.Context) {
    this.timeout(60_000);
    await stopStartedStack();
  },
};
