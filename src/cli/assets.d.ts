// Types of the non-code files the compiled binary imports as embedded assets (`with { type: "file" }`).
declare module "*.so" {
  const path: string;
  export default path;
}
