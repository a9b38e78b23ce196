/** The event contract's id pattern: impression, advertiser and campaign ids (README, "Public contract"). */
export const ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
