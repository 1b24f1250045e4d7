import { MemoryHostStore } from '../../src/store/memory-host-store.js';
import { hostStoreContract } from '../contract/host-store.contract.js';

hostStoreContract('InMemory', {
  async open() {
    const store = new MemoryHostStore();
    return { store, dispose: () => store.close() };
  },
});
