import { pathParam, z } from "../../lib/openapi";
import { MAX_RELAY_STATE } from "./sso.service";

export const IdpParam = z.object({ idp_id: pathParam("idp_id") });

export const LoginQuery = z.object({
  relay_state: z.string().max(MAX_RELAY_STATE, `must be at most ${MAX_RELAY_STATE} characters`).optional().openapi({
    description:
      "Where the app should land after sign-in, handed back as `state` on the callback: a path of the app (`/projects?tab=1`) or an absolute URL on APP_BASE_URL's origin. Anything else is 400.",
    example: "/projects",
  }),
});

export const ExchangeInput = z
  .object({ code: z.string().min(1, "is required").max(256).openapi({ description: "The `code` the ACS put on the callback URL." }) })
  .openapi("SsoExchangeInput");

/** The ACS's form fields (HTTP-POST binding); read from the form body by the handler. */
export const AcsForm = z.object({
  SAMLResponse: z.string().min(1, "is required"),
  RelayState: z.string().max(4096).optional(),
});

export const redirectResponse = (status: 302 | 303, description: string) => ({
  [status]: { description, headers: z.object({ Location: z.string().openapi({ description: "The URL to go to." }) }) },
});
