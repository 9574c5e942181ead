/** Every scenario, in the order a run measures them (warm first, then the ones that restart mirrors, then the opt-in replica set). */
import type { ScenarioName } from '../options.ts';
import { bigBlob1, bigBlob8 } from './big-blob.ts';
import { coldConcurrent } from './cold-concurrent.ts';
import { coldPull } from './cold-pull.ts';
import { cold200, slow200 } from './memory.ts';
import { configBlob, layers4k, tagGet, tagHead } from './request-rate.ts';
import { replicaSet } from './replica-set.ts';
import type { Scenario } from './scenario.ts';
import { wan } from './wan.ts';

export const allScenarios: Record<ScenarioName, Scenario> = {
  'tag-head': tagHead,
  'tag-get': tagGet,
  'config-blob': configBlob,
  'layers-4k': layers4k,
  'big-blob-1': bigBlob1,
  'big-blob-8': bigBlob8,
  'cold-pull': coldPull,
  'cold-32': coldConcurrent,
  wan,
  'cold-200': cold200,
  'slow-200': slow200,
  'replica-set': replicaSet,
};
