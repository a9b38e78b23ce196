/**
 * The event contract's id pattern: impression, advertiser and campaign ids (README, "Public
 * contract"). Enforced on input by parseImpression (impression/); every part that takes an id from
 * outside again (api/ and billing/ parameters, live/ joins, sink/, ledger/, tools/) checks it too.
 */
export const ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
