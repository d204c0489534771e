// A small event emitter shared by the modules of one tab.

class Bus {
  constructor() {
    this.handlers = new Map();
  }

  on(name, handler) {
    if (!this.handlers.has(name)) this.handlers.set(name, new Set());
    this.handlers.get(name).add(handler);
    return () => this.handlers.get(name).delete(handler);
  }

  emit(name, payload) {
    for (const handler of this.handlers.get(name) || []) {
      try {
        handler(payload);
      } catch (error) {
        console.error(`handler of ${name} failed`, error);
      }
    }
  }
}

export const bus = new Bus();
