import { createRouter, createWebHistory } from 'vue-router';
import { useSessionStore } from './stores/session';
import OverviewView from './views/OverviewView.vue';
import SignInView from './views/SignInView.vue';

declare module 'vue-router' {
  interface RouteMeta {
    /** Reachable without a token. */
    public?: boolean;
    /** Only for admin tokens. */
    admin?: boolean;
    title?: string;
  }
}

export const router = createRouter({
  history: createWebHistory(),
  routes: [
    { path: '/', name: 'overview', component: OverviewView, meta: { title: 'Overview' } },
    { path: '/signin', name: 'signin', component: SignInView, meta: { public: true, title: 'Sign in' } },
    { path: '/pipeline', name: 'pipeline', component: () => import('./views/PipelineView.vue'), meta: { admin: true, title: 'Pipeline health' } },
    {
      path: '/campaigns/:advertiserId/:campaignId', name: 'campaign', component: () => import('./views/CampaignView.vue'),
      meta: { title: 'Campaign' },
    },
    { path: '/billing', name: 'billing', component: () => import('./views/BillingView.vue'), meta: { title: 'Billing' } },
    { path: '/:rest(.*)*', redirect: '/' },
  ],
});

router.beforeEach(async (to) => {
  const session = useSessionStore();
  await session.ready();
  if (session.status === 'unreachable') return true; // App.vue shows the error with a retry
  const signedIn = session.status === 'signed-in';
  if (to.meta.public) return signedIn && to.name === 'signin' ? { name: 'overview' } : true;
  if (!signedIn) return { name: 'signin', query: to.fullPath !== '/' ? { redirect: to.fullPath } : {} };
  if (to.meta.admin && !session.isAdmin) return { name: 'overview' };
  return true;
});

router.afterEach((to) => {
  document.title = to.meta.title ? `${to.meta.title} · tally` : 'tally';
});
