// Sampling: the Sampler (bias, penalties, top-k/p, min-p, temperature, seeded draw), stop handling.
export { MAX_TOP_LOGPROBS, type TokenLogprob, tokenLogprob } from "./logprobs.ts";
export { Rng, randomSeed } from "./rng.ts";
export { type RowKernelMode, setRowKernels } from "./row-kernels.ts";
export {
  argmax,
  DEFAULT_SAMPLER_OPTIONS,
  MAX_LOGIT_BIAS,
  MAX_LOGIT_BIAS_ENTRIES,
  MAX_SEED,
  Sampler,
  SamplerError,
  type SamplerOptions,
  selectTopK,
  type TokenDistribution,
} from "./sampler.ts";
export {
  type FinishReason,
  StopCondition,
  type StopConditionOptions,
  type StopMatch,
  StopMatcher,
  type StopStep,
} from "./stop.ts";
