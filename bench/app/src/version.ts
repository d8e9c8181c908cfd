// The benchmark's "one source file changed" scenario edits this file.
export const version = "1.0.0";
export const revision = 0;
