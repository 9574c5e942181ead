/** Types of render.js (the status page's sections, shared by the server and the browser). */
import type { StatusPageData } from '../../cluster/status-page-data.ts';
import type { RepositoryPulls } from '../../cluster/pull-activity.ts';
import type { PrefetchJobStatus } from '../../prefetch/ports.ts';

export type { StatusPageData, RepositoryPulls };
/** A job as `GET /api/v0/prefetch/jobs` answers it (JSON: absent fields may be missing). */
export type PrefetchJobView = PrefetchJobStatus;

export function escapeHtml(value: unknown): string;
export function formatBytes(bytes: number): string;
export function formatPercent(ratio: number | null | undefined): string;
export function formatDuration(seconds: number): string;
export function formatTime(iso: string | undefined): string;
export function renderIssues(data: StatusPageData): string;
export function renderReplicas(data: StatusPageData): string;
export function renderCache(data: StatusPageData): string;
export function renderChart(data: StatusPageData): string;
export function renderRepositories(data: StatusPageData): string;
export function renderPulls(data: StatusPageData): string;
export function renderJobs(answer: { jobs: PrefetchJobView[] } | null | string): string;
export function renderSections(data: StatusPageData): Record<'sec-issues' | 'sec-replicas' | 'sec-cache' | 'sec-chart' | 'sec-repos' | 'sec-pulls' | 'sec-jobs', string>;
