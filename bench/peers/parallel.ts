// What the peer's `parallel` command and hearth's serving bench share: the prompts both sides
// prefill (so the comparison is like for like) and the shape of the peer's result. No
// node-llama-cpp import here, so the hearth side can use it without the peer installed.

export const PARALLEL_PROMPTS = [
  "The history of the printing press begins",
  "In a small village by the sea, there lived",
  "A recipe for bread needs flour, water,",
  "The theory of evolution explains how",
  "def fibonacci(n):\n    ",
  "Once upon a time, a curious robot",
  "The capital cities of Europe include",
  "To install the package, first run",
  "Photosynthesis is the process by which",
  "The rules of chess are simple:",
  "My favourite season is autumn because",
  "A good night's sleep helps the brain",
  "The first computers filled entire rooms and",
  "Water boils at one hundred degrees when",
  "Dear friend, I am writing to tell you",
  "The stars we see at night are",
];

export interface ParallelResult {
  peer: string;
  model: string;
  threads: number;
  sequences: number;
  tokens_per_sequence: number;
  generated_tokens: number;
  prompt_tokens: number;
  wall_ms: number;
  agg_tps: number;
  ttft_ms_p50: number;
  /** llama_decode calls: generated_tokens / decode_calls is the mean number of sequences per step. */
  decode_calls: number;
  peak_rss_mb: number | null;
}
