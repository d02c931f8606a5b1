import type Bottleneck from 'bottleneck';
import { adjustReservoir, freeNow, takeNow } from '../internal/bottleneck';

/** A held slot in some limiter; `undo` gives it back as if the call never went. */
export interface Grant {
  release(): void;
  undo(): void;
}

/** A grant whose release runs once; undo also gives the taken weight back to the reservoir. */
function grant(limiter: Bottleneck, weight: number, free: () => void): Grant {
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    free();
  };
  return {
    release,
    undo: () => {
      release();
      adjustReservoir(limiter, weight);
    },
  };
}

/** A slot of a Bottleneck limiter taken at once when nothing waits and there is room; undefined otherwise. */
export function takeSlotNow(limiter: Bottleneck, weight = 1): Grant | undefined {
  return takeNow(limiter, weight) ? grant(limiter, weight, () => freeNow(limiter, weight)) : undefined;
}

/** Takes one slot of a Bottleneck limiter and holds it until released. */
export function holdSlot(limiter: Bottleneck, weight = 1): Promise<Grant> | Grant {
  const now = takeSlotNow(limiter, weight);
  if (now) return now;
  return new Promise((granted, failed) => {
    limiter
      .schedule(
        { weight },
        () => new Promise<void>((done) => granted(grant(limiter, weight, done))),
      )
      .catch(failed);
  });
}
