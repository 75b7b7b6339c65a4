// The KV-tier half of NativeModel for the scripted models of unit tests: a model whose prefix
// cache and tiers were never opened, which is what a native model is before kvTierOpen (a prefix
// lookup reuses nothing, a publish registers nothing). The calls that need an open tier throw.
import type { KvTierOptions, KvTierStats, NativeKvTiers } from "../../src/native/model-api.ts";

function noTier(call: string): never {
  throw new Error(`${call}: this scripted test model has no KV tiers`);
}

export abstract class WithoutKvTiers implements NativeKvTiers {
  abstract seqCreate(): number;
  readonly kvModelTag = 0n;
  kvTierOpen(_opts: KvTierOptions): void {
    noTier("kvTierOpen");
  }
  seqCreateWithPrefix(_tokens: ArrayLike<number>): { seqId: number; reusedTokens: number } {
    return { seqId: this.seqCreate(), reusedTokens: 0 };
  }
  seqPublish(_seqId: number, _tokens: ArrayLike<number>): number {
    return 0;
  }
  kvTierSpill(_tokens: ArrayLike<number>, _fromTokens: number): number {
    return 0;
  }
  kvTierReclaimable(): number {
    return 0;
  }
  kvTierPersist(): number {
    return 0;
  }
  kvTierCheckpoint(): number {
    return 0;
  }
  kvTierStats(): KvTierStats {
    return noTier("kvTierStats");
  }
  kvRecordBytes(): number {
    return noTier("kvRecordBytes");
  }
  kvChain(_tokens: ArrayLike<number>): { keys: BigUint64Array; localPages: number } {
    return noTier("kvChain");
  }
  kvPageExport(_tokens: ArrayLike<number>, _page: number, _out: Uint8Array): void {
    noTier("kvPageExport");
  }
  kvPageImport(_tokens: ArrayLike<number>, _page: number, _record: Uint8Array): boolean {
    return noTier("kvPageImport");
  }
  kvPageUnpin(_tokens: ArrayLike<number>, _page: number, _used: boolean): boolean {
    return noTier("kvPageUnpin");
  }
  seqSave(_seqId: number, _tokens: ArrayLike<number>, _path: string): number {
    return noTier("seqSave");
  }
  seqRestore(_path: string): { seqId: number; tokens: number[] } {
    return noTier("seqRestore");
  }
}
