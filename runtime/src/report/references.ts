/** The works REPORT.md cites (../shared/docs/references.md): citations only, no figures of theirs. */
export const REFERENCES: readonly string[] = [
  'Fiddler: K. Kamahori, T. Tang, Y. Gu, K. Zhu, B. Kasikci, "Fiddler: CPU-GPU Orchestration for Fast Inference of Mixture-of-Experts Models", ICLR 2025, arXiv 2402.07033 (efeslab/fiddler): missed experts computed on the CPU, per-layer cost model; the rule of `--miss hybrid`.',
  'mixtral-offloading: A. Eliseev, D. Mazur, "Fast Inference of Mixture-of-Experts Language Models with Offloading", arXiv 2312.17238 (dvmazur/mixtral-offloading): per-layer LRU expert cache, speculative loading with the next layer\'s gate (`next-gate`), mixed quantization.',
  'DeepSeek-AI, "DeepSeek-V2: A Strong, Economical, and Efficient Mixture-of-Experts Language Model", arXiv 2405.04434 (MLA attention, DeepSeekMoE); model card deepseek-ai/DeepSeek-V2-Lite-Chat.',
  'ESFT: Z. Wang et al., "Let the Expert Stick to His Last: Expert-Specialized Fine-Tuning for Sparse Architectural Large Language Models", arXiv 2407.01906 (deepseek-ai/ESFT): the source of the routing traces.',
  'MoE-Infinity, arXiv 2401.14361 (EfficientMoE/MoE-Infinity): activation-aware expert cache and prefetch.',
  'ktransformers (kvcache-ai, SOSP 2025): routed experts on the CPU, the rest on the GPU.',
  'llama.cpp `--cpu-moe` / `--n-cpu-moe`: expert tensors kept and computed in host memory.',
  'ProMoE (arXiv 2410.22134), HOBBIT (arXiv 2411.01433), AdapMoE (arXiv 2408.10284), Pre-gated MoE (ISCA 2024), HybriMoE (arXiv 2504.05897), MoE-Lightning (ASPLOS 2025), ExpertFlow (arXiv 2410.17954), DAOP (DATE 2025, arXiv 2501.10375).',
  'L. Belady, "A study of replacement algorithms for a virtual-storage computer", IBM Systems Journal 1966: MIN, the offline optimum (`belady`, `opt`).',
  'D. Lee et al., "LRFU: A Spectrum of Policies that Subsumes the Least Recently Used and Least Frequently Used Policies", IEEE Transactions on Computers 2001 (`lfru`).',
  'vidur (arXiv 2405.05465): a simulator of LLM inference calibrated by profiling, reporting predicted against measured.',
];
