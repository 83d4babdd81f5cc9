/** GET /v1/web on the admin socket: where the dashboard is and how to sign in (slicectl web). */
export interface WebInfo {
  url: string;
  tokenFile: string;
  /** The URL with the token after "#token=": opening it signs in (the fragment never reaches a server). */
  signInUrl: string;
  /** The CA whose client certificates sign in without the token (HTTPS only), or null. */
  clientCa: string | null;
}
