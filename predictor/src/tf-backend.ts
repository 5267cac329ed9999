/**
 * Loads TensorFlow.js for training. `@tensorflow/tfjs-node` (native libtensorflow) is used when a user
 * has installed it; it cannot be installed on the project's machines (it downloads libtensorflow at
 * install time), so the usual path is `@tensorflow/tfjs` with the WebAssembly backend, measured about
 * 8x faster than the plain JS cpu backend on this project's 2-core machines.
 */
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import type * as TfModule from '@tensorflow/tfjs';
import { UserError } from '../../core/src/errors.js';

export type Tf = typeof TfModule;

export interface LoadedTf {
  tf: Tf;
  /** 'tensorflow' (tfjs-node), 'wasm' or 'cpu'. */
  backend: string;
}

let cached: Promise<LoadedTf> | undefined;

export type BackendChoice = 'auto' | 'node' | 'wasm' | 'cpu';

export function loadTf(choice: BackendChoice = 'auto'): Promise<LoadedTf> {
  if (choice === 'auto') return (cached ??= load('auto'));
  return load(choice);
}

async function load(choice: BackendChoice): Promise<LoadedTf> {
  if (choice === 'auto' || choice === 'node') {
    // A variable specifier keeps TypeScript from requiring the (usually absent) package at build time.
    const nodeBinding = '@tensorflow/tfjs-node';
    try {
      const tf = (await import(nodeBinding)) as Tf;
      await tf.ready();
      return { tf, backend: tf.getBackend() };
    } catch (err) {
      if (choice === 'node') {
        const missing = (err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND';
        throw new UserError(
          missing
            ? 'option --backend node: @tensorflow/tfjs-node is not installed (it downloads libtensorflow when installed); use --backend wasm (the default when it is absent)'
            : `option --backend node: @tensorflow/tfjs-node is installed but does not load (${(err as Error).message.split('\n')[0]}); use --backend wasm`,
        );
      }
    }
  }
  const tf = await import('@tensorflow/tfjs');
  if (choice !== 'cpu') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    const require = createRequire(import.meta.url);
    wasm.setWasmPaths(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm')) + '/');
    if (await tf.setBackend('wasm')) {
      await tf.ready();
      return { tf, backend: 'wasm' };
    }
  }
  await tf.setBackend('cpu');
  await tf.ready();
  return { tf, backend: 'cpu' };
}
