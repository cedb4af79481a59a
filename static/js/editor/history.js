// Undo/redo as a bounded stack of label-map snapshots (a 512x512 map is 256 KiB).

export class History {
  constructor(limit = 40) {
    this.limit = limit;
    this.undoStack = [];
    this.redoStack = [];
  }

  // Call before a change with the map as it is now.
  push(labels) {
    this.undoStack.push(labels.slice());
    if (this.undoStack.length > this.limit) this.undoStack.shift();
    this.redoStack = [];
  }

  // Drop the snapshot of a change that ended up changing nothing.
  discard() {
    this.undoStack.pop();
  }

  undo(labels) {
    if (!this.undoStack.length) return null;
    this.redoStack.push(labels.slice());
    return this.undoStack.pop();
  }

  redo(labels) {
    if (!this.redoStack.length) return null;
    this.undoStack.push(labels.slice());
    return this.redoStack.pop();
  }

  get canUndo() { return this.undoStack.length > 0; }
  get canRedo() { return this.redoStack.length > 0; }
}
