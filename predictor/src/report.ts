/** Placeholder replaced below in this session. */
export async function writePredictorReport(_o: { runsDir: string; outDir: string; log: (l: string) => void }): Promise<string> {
  throw new Error('not yet');
}
