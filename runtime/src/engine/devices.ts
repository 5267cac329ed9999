import { UserError } from '../../../core/src/errors.js';
import { loadNativeAddon } from './native-binding.js';

/** Whether this build of the native engine has the CUDA backend (built where CMake found nvcc and cuBLAS). */
export function cudaBuilt(): boolean {
  try {
    const addon = loadNativeAddon() as unknown as { calibrate?: { cudaBuilt(): boolean } };
    return addon.calibrate?.cudaBuilt() === true;
  } catch {
    return false;
  }
}

/** The device a command uses when none is given: the GPU when this build can drive one, else the CPU. */
export function defaultDevice(): 'cpu' | 'cuda' {
  return cudaBuilt() ? 'cuda' : 'cpu';
}

/** Refuses `--device cuda` up front on a build without the CUDA backend, saying why and what to do. */
export function checkDeviceBuilt(option: string, device: 'cpu' | 'cuda'): void {
  if (device === 'cuda' && !cudaBuilt()) {
    throw new UserError(
      `option ${option}: this build of the native engine has no CUDA backend (CMake found no nvcc, CUDA toolkit or cuBLAS when it was built); ` +
        'use --device cpu here, or run on the GPU machine (tools/gpu/README.md)',
    );
  }
}
